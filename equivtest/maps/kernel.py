"""The nonlinear map: the affine map plus Gaussian-kernel ridge regression on what it leaves.

``Y = X W + b + k(X) C + c`` where ``k(X)`` are Nyström features of an RBF kernel on
``n_landmarks`` rows drawn from the training rows (``exp(-gamma |x - l|^2)`` on the rows
scaled to unit mean variance per feature, whitened by the landmarks' own kernel matrix).
The affine part comes first (the :class:`~equivtest.maps.affine.Affine` fit, penalty
cross-validated by input), so the ladder is nested: this map is never more rigid than
the affine one. Its kernel width and penalty are then cross-validated over inputs
(``GroupKFold``) on the affine residuals of the training rows. Cost: O(n m^2) per fold
and width for n rows and m landmarks (the landmarks keep it tractable for large n).
"""

from __future__ import annotations

import numpy as np

from ._base import Rung
from .affine import DEFAULT_ALPHAS, Affine, RidgeSolver, cross_validate_ridge

DEFAULT_GAMMAS = (0.25, 1.0, 4.0)  # in units of 1 / (median squared distance between rows)
KERNEL_ALPHAS = (1e-8, 1e-6, 1e-4, 1e-2, 1.0)
EIGEN_CUTOFF = 1e-10  # landmark kernel eigenvalues below this (relative) are dropped


class Nonlinear(Rung):
    """Affine map plus RBF kernel ridge (Nyström) on its residuals; see the module doc."""

    name = "nonlinear"
    fitted_arrays = ("coef_", "intercept_", "centre_", "landmarks_", "projection_", "kernel_coef_", "kernel_intercept_")
    fitted_scalars = ("alpha_", "gamma_", "kernel_alpha_", "scaling_", "condition_", "n_rows_")

    def __init__(self, n_landmarks: int = 400, gammas=DEFAULT_GAMMAS, alphas=KERNEL_ALPHAS,
                 affine_alphas=DEFAULT_ALPHAS, cv: int = 3, random_state: int = 0):
        self.n_landmarks = n_landmarks
        self.gammas = gammas
        self.alphas = alphas
        self.affine_alphas = affine_alphas
        self.cv = cv
        self.random_state = random_state

    def _fit(self, x, y, groups):
        affine = Affine(alphas=self.affine_alphas, cv=self.cv)._fit_checked(x, y, groups)
        self.coef_, self.intercept_, self.alpha_ = affine.coef_, affine.intercept_, affine.alpha_
        self.condition_, self.n_rows_ = affine.condition_, len(x)
        residual = y - affine._predict(x)
        self.centre_ = x.mean(axis=0)
        self.scaling_ = float(np.sqrt(max(np.mean(np.var(x, axis=0)), np.finfo(float).tiny)))
        z = (x - self.centre_) / self.scaling_
        rng = np.random.default_rng(self.random_state)
        self.landmarks_ = z[np.sort(rng.choice(len(z), size=min(self.n_landmarks, len(z)), replace=False))]
        pairs = rng.integers(0, len(z), size=(2, min(2000, len(z))))
        d2 = np.sum((z[pairs[0]] - z[pairs[1]]) ** 2, axis=1)
        unit = 1.0 / max(float(np.median(d2[d2 > 0])) if np.any(d2 > 0) else 1.0, np.finfo(float).tiny)
        d2_rows = _sq_distances(z, self.landmarks_)  # once for every kernel width
        d2_landmarks = _sq_distances(self.landmarks_, self.landmarks_)
        best = None
        for g in self.gammas:
            gamma = float(g) * unit
            projection = _projection(np.exp(-gamma * d2_landmarks))
            feats = np.exp(-gamma * d2_rows) @ projection
            alpha, errors = cross_validate_ridge(feats, residual, groups, list(self.alphas), self.cv, "nonlinear map")
            score = float(np.min(errors))
            if best is None or score < best[0]:
                best = (score, gamma, alpha, projection, feats)
        _, self.gamma_, self.kernel_alpha_, self.projection_, feats = best
        self.kernel_coef_, self.kernel_intercept_ = RidgeSolver(feats, residual).coef(self.kernel_alpha_)

    def _predict(self, x):
        z = (x - self.centre_) / self.scaling_
        feats = np.exp(-self.gamma_ * _sq_distances(z, self.landmarks_)) @ self.projection_
        kernel = feats @ self.kernel_coef_ + self.kernel_intercept_
        return x @ self.coef_ + self.intercept_ + kernel

    def diagnostics(self) -> dict:
        self._check_fitted()
        return {"alpha": self.alpha_, "ridge_condition": self.condition_, "rows": self.n_rows_,
                "features": self.n_features_in_, "gamma": self.gamma_, "kernel_alpha": self.kernel_alpha_,
                "landmarks": len(self.landmarks_)}


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``a`` and ``b`` (one matrix product; clipped at 0)."""
    d2 = np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)


def _projection(k: np.ndarray) -> np.ndarray:
    """Nyström whitening of the landmarks' kernel matrix: ``U S^-1/2`` over the eigenvalues kept."""
    s, u = np.linalg.eigh(k)
    keep = s > EIGEN_CUTOFF * s[-1]
    return u[:, keep] / np.sqrt(s[keep])
