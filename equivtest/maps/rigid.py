"""The rigid maps: identity, permutation, orthogonal (Procrustes) and diagonal affine.

They need no neighbourhoods and no hyper-parameters, so their fit ignores ``groups``.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._base import Rung


class Identity(Rung):
    """``Y = X``: the two layers compute the same numbers."""

    name = "identity"
    same_width = True

    def __init__(self):
        pass

    def _fit(self, x, y, groups):
        pass

    def _predict(self, x):
        return x.copy()


def correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``(p, q)`` Pearson correlations between the columns of ``x`` and ``y``; 0 where a column is constant."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    sx, sy = np.sqrt(np.sum(xc**2, axis=0)), np.sqrt(np.sum(yc**2, axis=0))
    cov = xc.T @ yc
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sx, sy)
    return np.where(np.isfinite(corr), corr, 0.0)


class Permutation(Rung):
    """``Y[:, j] = sign_j X[:, perm_j]``: the same neurons in another order.

    Neurons are matched by ``scipy.optimize.linear_sum_assignment`` on their correlations
    over the training rows (the largest total correlation; with ``sign_flips`` the largest
    total absolute correlation, and a negatively correlated match gets sign -1).
    There is no shift and no scale: a neuron-permuted copy of a network computes exactly
    the permuted numbers, and a sign flip is exact for odd activations (tanh) only. A
    rescaled or shifted copy is the diagonal map's business.
    """

    name = "permutation"
    same_width = True
    fitted_arrays = ("permutation_", "signs_")

    def __init__(self, sign_flips: bool = False):
        self.sign_flips = sign_flips

    def _fit(self, x, y, groups):
        corr = correlations(x, y)  # corr[i, j]: source neuron i against target neuron j
        score = np.abs(corr) if self.sign_flips else corr
        rows, cols = linear_sum_assignment(-score)
        perm = np.empty(y.shape[1], dtype=np.int64)
        perm[cols] = rows
        signs = np.ones(y.shape[1])
        if self.sign_flips:
            signs[cols] = np.where(corr[rows, cols] < 0, -1.0, 1.0)
        self.permutation_, self.signs_ = perm, signs

    def _predict(self, x):
        return x[:, self.permutation_] * self.signs_


class Orthogonal(Rung):
    """``Y = s X R + t`` with ``R`` orthogonal, one scale ``s`` and a shift ``t`` (Procrustes)."""

    name = "orthogonal"
    same_width = True
    fitted_arrays = ("rotation_", "shift_")
    fitted_scalars = ("scale_",)

    def __init__(self):
        pass

    def _fit(self, x, y, groups):
        mx, my = x.mean(axis=0), y.mean(axis=0)
        xc, yc = x - mx, y - my
        u, s, vt = np.linalg.svd(xc.T @ yc)
        self.rotation_ = u @ vt
        norm = float(np.sum(xc**2))
        self.scale_ = float(np.sum(s) / norm) if norm > 0 else 0.0
        self.shift_ = my - self.scale_ * (mx @ self.rotation_)

    def _predict(self, x):
        return self.scale_ * (x @ self.rotation_) + self.shift_


class Diagonal(Rung):
    """``Y[:, j] = a_j X[:, j] + b_j``: every neuron rescaled and shifted on its own
    (least squares per neuron; a constant source neuron gets ``a_j = 0``)."""

    name = "diagonal"
    same_width = True
    fitted_arrays = ("scale_", "shift_")

    def __init__(self):
        pass

    def _fit(self, x, y, groups):
        mx, my = x.mean(axis=0), y.mean(axis=0)
        xc = x - mx
        var = np.sum(xc**2, axis=0)
        cov = np.sum(xc * (y - my), axis=0)
        self.scale_ = np.divide(cov, var, out=np.zeros_like(cov), where=var > 0)
        self.shift_ = my - self.scale_ * mx

    def _predict(self, x):
        return x * self.scale_ + self.shift_
