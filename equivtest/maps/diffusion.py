"""The thesis's diffusion-map :class:`~equivtest.transform.Transformation` as a rung of the ladder.

A thin wrapper: it needs the neighbourhood rows of every training row (``fit(...,
neighbourhoods=(NX, NY))``, shapes ``(n, M, p)`` and ``(n, M, q)``), fits a
Transformation with X as network "a" and Y as "b", and predicts ``to="b"``. Saving
writes the Transformation's own file; :func:`~equivtest.maps.load_map` reads it back.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_whole_number
from ..errors import FitConfigError
from ._base import Rung, check_rows


class DiffusionMap(Rung):
    """``n_eigenvectors`` and ``options`` (keyword arguments of ``Transformation``) as given.

    ``max_rows`` bounds the cost: the fit uses at most that many training rows, drawn at
    random (``random_state``) where there are more. The thesis's fit grows with the square
    of the rows (the kernel) and with rows x neighbourhood size x width (the covariances),
    and the verdict fits it four times per direction (control, its null, the pair, its
    null). ``None``: every row.
    """

    name = "diffusion"
    needs_neighbourhoods = True

    def __init__(self, n_eigenvectors: int = 10, options: dict | None = None, max_rows: int | None = 1000,
                 random_state: int = 0):
        self.n_eigenvectors = n_eigenvectors
        self.options = options
        self.max_rows = max_rows
        self.random_state = random_state

    def fit(self, X, Y, groups=None, *, neighbourhoods=None) -> "DiffusionMap":
        from ..transform import Transformation

        x, y, _ = check_rows(X, Y, groups)
        if self.max_rows is not None:
            as_whole_number(self.max_rows, "max_rows", minimum=2, error=FitConfigError)
        if neighbourhoods is None:
            raise FitConfigError("the diffusion-map rung needs the neighbourhood rows of every training row: "
                                 "fit(X, Y, groups, neighbourhoods=(NX, NY)) with shapes (n, M, p) and (n, M, q)")
        nx, ny = neighbourhoods
        if self.max_rows is not None and len(x) > self.max_rows:
            keep = np.sort(np.random.default_rng(self.random_state).choice(len(x), self.max_rows, replace=False))
            x, y, nx, ny = x[keep], y[keep], np.asarray(nx)[keep], np.asarray(ny)[keep]
        self.transformation_ = Transformation(self.n_eigenvectors, **(self.options or {})).fit(x, nx, y, ny)
        self.n_features_in_, self.n_features_out_ = x.shape[1], y.shape[1]
        return self

    def _predict(self, x):
        return self.transformation_.predict(x, to="b")

    def diagnostics(self) -> dict:
        self._check_fitted()
        eig = self.transformation_.side_a_.eigenvalues
        return {"eigenvalues_source": [float(v) for v in eig], "rows": len(self.transformation_.side_a_.activations)}

    def save(self, path):
        from ..persist import save_transformation

        self._check_fitted()
        return save_transformation(self.transformation_, path)

    @classmethod
    def from_transformation_file(cls, path) -> "DiffusionMap":
        from ..transform import Transformation

        t = Transformation.load(path)
        params = t.get_params()
        rung = cls(params.pop("n_eigenvectors"), {k: v for k, v in params.items() if k != "names"}, max_rows=None)
        rung.transformation_ = t
        rung.n_features_in_ = t.side_a_.activations.shape[1]
        rung.n_features_out_ = t.side_b_.activations.shape[1]
        return rung
