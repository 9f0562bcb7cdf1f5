"""The affine map ``Y = X W + b``: ridge regression, its penalty chosen by cross-validation over inputs."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupKFold

from ..errors import FitConfigError
from ._base import Rung
from ._xp import NUMPY

# penalties relative to the mean eigenvalue of the centred Gram matrix X^T X (scale-free)
DEFAULT_ALPHAS = (1e-12, 1e-9, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def group_folds(groups: np.ndarray, n_splits: int, what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) of ``GroupKFold``: the rows of one input stay on one side."""
    n_inputs = len(np.unique(groups))
    if n_inputs < 2:
        raise FitConfigError(f"the {what} cross-validates its penalty over inputs and needs rows of at least 2 "
                             f"inputs, got {n_inputs}; give groups (the input of each row) or more inputs, "
                             "or fix the penalty (alpha=...)")
    return list(GroupKFold(n_splits=min(n_splits, n_inputs)).split(groups, groups=groups))


class RidgeSolver:
    """Ridge solutions for many penalties from one eigendecomposition of ``X^T X`` (centred).

    ``xp``: the array operations (:mod:`equivtest.maps._xp`); ``x``, ``y`` and the solutions
    are its arrays (numpy by default)."""

    def __init__(self, x, y, xp=NUMPY):
        self.mean_x, self.mean_y = xp.mean(x, axis=0), xp.mean(y, axis=0)
        xc = x - self.mean_x
        self.eigenvalues, self.vectors = xp.eigh(xc.T @ xc)
        self.eigenvalues = xp.clip_min(self.eigenvalues, 0.0)
        self.projected = self.vectors.T @ (xc.T @ (y - self.mean_y))
        self.unit = max(float(xp.mean(self.eigenvalues)), np.finfo(float).tiny)

    def coef(self, alpha: float) -> tuple:
        a = alpha * self.unit
        w = self.vectors @ (self.projected / (self.eigenvalues + a)[:, None])
        return w, self.mean_y - self.mean_x @ w

    def condition(self, alpha: float) -> float:
        a = alpha * self.unit
        return float((self.eigenvalues[-1] + a) / (self.eigenvalues[0] + a))


def cross_validate_ridge(x, y, groups, alphas, n_splits: int, what: str, xp=NUMPY) -> tuple[float, np.ndarray]:
    """The penalty (of ``alphas``) with the least squared error on left-out inputs, and all errors
    (``x``, ``y``: arrays of ``xp``, numpy by default; ``groups`` and the errors: numpy)."""
    errors = np.zeros(len(alphas))
    for train, val in group_folds(groups, n_splits, what):
        solver = RidgeSolver(xp.rows(x, train), xp.rows(y, train), xp)
        target, source = xp.rows(y, val), xp.rows(x, val)
        total = max(float(xp.sum((target - xp.mean(target, axis=0)) ** 2)), np.finfo(float).tiny)
        for i, alpha in enumerate(alphas):
            w, b = solver.coef(alpha)
            errors[i] += float(xp.sum((source @ w + b - target) ** 2)) / total
    return float(alphas[int(np.argmin(errors))]), errors / n_splits


class Affine(Rung):
    """``Y = X W + b`` by ridge regression.

    ``alpha=None`` (default) picks the penalty from ``alphas`` (relative to the mean
    eigenvalue of the centred ``X^T X``, so they do not depend on the data's scale) by
    ``GroupKFold`` over inputs: the rows of one input are never on both sides of a fold.
    A number fixes the penalty (same units). ``diagnostics()`` gives the chosen penalty and
    the condition number of the solved system ``X^T X + alpha I``. On a ``device`` the
    centring, the products, the eigendecompositions, the ridge solutions and the
    cross-validation errors run there, and so does ``predict``'s product; the folds are
    drawn in numpy.
    """

    name = "affine"
    fitted_arrays = ("coef_", "intercept_", "cv_errors_")
    fitted_scalars = ("alpha_", "condition_", "n_rows_")

    def __init__(self, alpha: float | None = None, alphas=DEFAULT_ALPHAS, cv: int = 5, device: str | None = None):
        self.alpha = alpha
        self.alphas = alphas
        self.cv = cv
        self.device = device

    def _fit(self, x, y, groups):
        xp = self._ops()
        x, y = xp.asarray(x), xp.asarray(y)
        if self.alpha is None:
            self.alpha_, self.cv_errors_ = cross_validate_ridge(x, y, groups, list(self.alphas), self.cv, "affine map",
                                                                xp)
        else:
            self.alpha_, self.cv_errors_ = float(self.alpha), np.zeros(0)
        solver = RidgeSolver(x, y, xp)
        coef, intercept = solver.coef(self.alpha_)
        self.coef_, self.intercept_ = xp.numpy(coef), xp.numpy(intercept)
        self.condition_ = solver.condition(self.alpha_)
        self.n_rows_ = len(x)

    def _predict(self, x):
        xp = self._ops()
        return xp.numpy(xp.asarray(x) @ xp.asarray(self.coef_) + xp.asarray(self.intercept_))

    def diagnostics(self) -> dict:
        self._check_fitted()
        return {"alpha": self.alpha_, "ridge_condition": self.condition_, "rows": self.n_rows_,
                "features": self.n_features_in_}
