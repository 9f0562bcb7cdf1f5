"""The Whitney criterion: a layer must be at least 2d+1 wide, and so must every earlier one.

Whitney's embedding theorem guarantees that a d-dimensional manifold embeds in
2d+1 dimensions; Bertalan et al. use it to argue that the topology of the input
manifold survives only through layers at least that wide. The condition is
sufficient, not necessary: a narrower layer can still be injective on the data
(the 1-1-1 network of experiment 1 is), so failing it is a warning about the
guarantee, not proof of non-equivalence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from .errors import FitConfigError


def estimate_intrinsic_dimension(points, k: int | None = None, variance: float = 0.95, max_points: int = 500) -> int:
    """Local-PCA estimate of the dimension of the manifold the samples lie on.

    For (up to ``max_points``) samples, the ``k`` nearest other samples are centred
    and the number of principal components that explain ``variance`` of their
    spread is counted; the median count is returned. The neighbourhoods are not used
    here: they are isotropic in the ambient input space by construction, so they
    would always report the ambient dimension.
    """
    x = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    n, dim = x.shape
    if n < 3:
        raise FitConfigError(f"need at least 3 samples to estimate an intrinsic dimension, got {n}; give intrinsic_dim")
    k = min(n - 1, k or max(2 * dim + 2, 10))
    centres = x if n <= max_points else x[np.linspace(0, n - 1, max_points).astype(int)]
    _, idx = cKDTree(x).query(centres, k=k + 1)
    counts = []
    for rows in idx:
        local = x[rows] - x[rows].mean(axis=0)
        s = np.linalg.svd(local, compute_uv=False) ** 2
        if s.sum() == 0:
            continue
        counts.append(int(np.searchsorted(np.cumsum(s) / s.sum(), variance) + 1))
    if not counts:
        raise FitConfigError("all sample neighbourhoods are single points; give intrinsic_dim explicitly")
    return int(np.median(counts))


@dataclass(frozen=True)
class WhitneyCheck:
    layer_width: int
    narrowest: tuple[str, int]  # (layer path, width) of the narrowest layer up to the chosen one
    intrinsic_dim: int

    @property
    def required(self) -> int:
        return 2 * self.intrinsic_dim + 1

    @property
    def passed(self) -> bool:
        return min(self.layer_width, self.narrowest[1]) >= self.required

    @property
    def value(self) -> int:
        return min(self.layer_width, self.narrowest[1])


def whitney_check(widths: list[tuple[str, int]], selected_width: int, intrinsic_dim: int) -> WhitneyCheck:
    """``widths``: (path, width) of each layer up to and including the chosen one, in run order."""
    if not widths:
        raise FitConfigError("no layer outputs were seen up to the chosen layer; is it reached by the forward pass?")
    earlier = widths[:-1] or widths
    narrowest = min(earlier, key=lambda pw: pw[1])
    return WhitneyCheck(int(selected_width), (narrowest[0], int(narrowest[1])), int(intrinsic_dim))
