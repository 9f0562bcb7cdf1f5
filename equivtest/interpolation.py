"""RBF interpolation on the principal axes of its inputs (steps 6 and 8 of the method)."""

from __future__ import annotations

import numpy as np
from scipy.interpolate import RBFInterpolator

from .errors import FitConfigError


# scipy's default polynomial degree per kernel (its minimum; 0 for the others)
POLYNOMIAL_DEGREE = {"thin_plate_spline": 1, "cubic": 1, "quintic": 2}


class PrincipalRBF:
    """``RBFInterpolator`` on the principal axes of its inputs.

    Activations of a wide layer often span fewer directions than the layer has
    neurons (a 1-d input through 8 tanh units can leave a 6-dimensional span). The
    thin plate spline's linear polynomial is then nearly singular on the raw
    coordinates, and the interpolant goes wild between samples. Rotating the centred
    inputs onto their principal axes and dropping axes whose singular value is below
    ``rtol`` of the largest removes that degeneracy without changing the data. A local
    interpolant (``neighbors``) whose kernel needs a linear polynomial keeps at most
    ``neighbors // 2`` axes, the largest.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, kernel: str, smoothing: float, neighbors: int | None = None,
                 rtol: float = 1e-7):
        self.mean_ = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - self.mean_, full_matrices=False)
        keep = int(np.sum(s > rtol * s[0])) if s[0] > 0 else 1
        if neighbors is not None and POLYNOMIAL_DEGREE.get(kernel, 0) >= 1:
            # a local thin plate spline's linear part needs more neighbours than dimensions;
            # a kernel with a constant polynomial (linear, gaussian, ...) needs no cut
            keep = max(1, min(keep, int(neighbors) // 2))
        self.axes_ = vt[:keep].T
        self.interpolator_ = RBFInterpolator(self._project(x), y, kernel=kernel, smoothing=smoothing, neighbors=neighbors)

    def _project(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) @ self.axes_

    def __call__(self, x: np.ndarray) -> np.ndarray:
        try:
            return self.interpolator_(self._project(np.asarray(x, dtype=np.float64)))
        except np.linalg.LinAlgError as exc:
            # a local interpolant solves its small systems here, at evaluation
            raise FitConfigError(
                f"local RBF interpolation failed ({exc}): some of the nearest interpolation nodes of an "
                "input coincide (samples with the same activations or the same diffusion coordinates, "
                "as in a kernel graph that falls into pieces; see kernel_components). Set smoothing > 0 "
                "(e.g. 1e-8), raise covariance_ridge or epsilon_k, or use more neighbours"
            ) from exc
