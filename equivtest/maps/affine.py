"""The affine map ``Y = X W + b``: ridge regression, its penalty chosen by cross-validation over inputs."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupKFold

from ..errors import FitConfigError
from ._base import Rung

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
    """Ridge solutions for many penalties from one eigendecomposition of ``X^T X`` (centred)."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        self.mean_x, self.mean_y = x.mean(axis=0), y.mean(axis=0)
        xc = x - self.mean_x
        self.eigenvalues, self.vectors = np.linalg.eigh(xc.T @ xc)
        self.eigenvalues = np.clip(self.eigenvalues, 0.0, None)
        self.projected = self.vectors.T @ (xc.T @ (y - self.mean_y))
        self.unit = max(float(np.mean(self.eigenvalues)), np.finfo(float).tiny)

    def coef(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        a = alpha * self.unit
        w = self.vectors @ (self.projected / (self.eigenvalues + a)[:, None])
        return w, self.mean_y - self.mean_x @ w

    def condition(self, alpha: float) -> float:
        a = alpha * self.unit
        return float((self.eigenvalues[-1] + a) / (self.eigenvalues[0] + a))


def cross_validate_ridge(x, y, groups, alphas, n_splits: int, what: str) -> tuple[float, np.ndarray]:
    """The penalty (of ``alphas``) with the least squared error on left-out inputs, and all errors."""
    errors = np.zeros(len(alphas))
    for train, val in group_folds(groups, n_splits, what):
        solver = RidgeSolver(x[train], y[train])
        target = y[val]
        total = max(float(np.sum((target - target.mean(axis=0)) ** 2)), np.finfo(float).tiny)
        for i, alpha in enumerate(alphas):
            w, b = solver.coef(alpha)
            errors[i] += float(np.sum((x[val] @ w + b - target) ** 2)) / total
    return float(alphas[int(np.argmin(errors))]), errors / n_splits


class Affine(Rung):
    """``Y = X W + b`` by ridge regression.

    ``alpha=None`` (default) picks the penalty from ``alphas`` (relative to the mean
    eigenvalue of the centred ``X^T X``, so they do not depend on the data's scale) by
    ``GroupKFold`` over inputs: the rows of one input are never on both sides of a fold.
    A number fixes the penalty (same units). ``diagnostics()`` gives the chosen penalty and
    the condition number of the solved system ``X^T X + alpha I``.
    """

    name = "affine"
    fitted_arrays = ("coef_", "intercept_", "cv_errors_")
    fitted_scalars = ("alpha_", "condition_", "n_rows_")

    def __init__(self, alpha: float | None = None, alphas=DEFAULT_ALPHAS, cv: int = 5):
        self.alpha = alpha
        self.alphas = alphas
        self.cv = cv

    def _fit(self, x, y, groups):
        if self.alpha is None:
            self.alpha_, self.cv_errors_ = cross_validate_ridge(x, y, groups, list(self.alphas), self.cv, "affine map")
        else:
            self.alpha_, self.cv_errors_ = float(self.alpha), np.zeros(0)
        solver = RidgeSolver(x, y)
        self.coef_, self.intercept_ = solver.coef(self.alpha_)
        self.condition_ = solver.condition(self.alpha_)
        self.n_rows_ = len(x)

    def _predict(self, x):
        return x @ self.coef_ + self.intercept_

    def diagnostics(self) -> dict:
        self._check_fitted()
        return {"alpha": self.alpha_, "ridge_condition": self.condition_, "rows": self.n_rows_,
                "features": self.n_features_in_}
