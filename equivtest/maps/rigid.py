"""The rigid maps: identity, permutation, orthogonal (Procrustes) and diagonal affine.

They need no neighbourhoods and no hyper-parameters, so their fit ignores ``groups``.
``device`` (see :class:`~equivtest.maps.Rung`): ``None`` computes in numpy, a torch device
name in torch float64 there; the neuron assignment (``linear_sum_assignment``) always runs
on the CPU.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._base import Rung
from ._xp import NUMPY


class Identity(Rung):
    """``Y = X``: the two layers compute the same numbers (nothing to compute; ``device`` is
    taken for uniformity with the other rungs and only checked)."""

    name = "identity"
    same_width = True

    def __init__(self, device: str | None = None):
        self.device = device

    def _fit(self, x, y, groups):
        self._ops()

    def _predict(self, x):
        return x.copy()


def correlations(x, y, xp=NUMPY):
    """``(p, q)`` Pearson correlations between the columns of ``x`` and ``y``; 0 where a column is constant."""
    xc, yc = x - xp.mean(x, axis=0), y - xp.mean(y, axis=0)
    sx, sy = xp.sqrt(xp.sum(xc**2, axis=0)), xp.sqrt(xp.sum(yc**2, axis=0))
    cov = xc.T @ yc
    return xp.finite_quotient(cov, xp.outer(sx, sy))


class Permutation(Rung):
    """``Y[:, j] = sign_j X[:, perm_j]``: the same neurons in another order.

    Neurons are matched by ``scipy.optimize.linear_sum_assignment`` on their correlations
    over the training rows (the largest total correlation; with ``sign_flips`` the largest
    total absolute correlation, and a negatively correlated match gets sign -1).
    There is no shift and no scale: a neuron-permuted copy of a network computes exactly
    the permuted numbers, and a sign flip is exact for odd activations (tanh) only. A
    rescaled or shifted copy is the diagonal map's business. On a ``device`` the
    correlations are computed there; the assignment and ``predict`` (a column gather) run
    in numpy.
    """

    name = "permutation"
    same_width = True
    fitted_arrays = ("permutation_", "signs_")

    def __init__(self, sign_flips: bool = False, device: str | None = None):
        self.sign_flips = sign_flips
        self.device = device

    def _fit(self, x, y, groups):
        xp = self._ops()
        corr = xp.numpy(correlations(xp.asarray(x), xp.asarray(y), xp))  # corr[i, j]: source i against target j
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
    """``Y = s X R + t`` with ``R`` orthogonal, one scale ``s`` and a shift ``t`` (Procrustes).

    On a ``device``: the centring, ``X^T Y``, its SVD and ``predict``'s product run there."""

    name = "orthogonal"
    same_width = True
    fitted_arrays = ("rotation_", "shift_")
    fitted_scalars = ("scale_",)

    def __init__(self, device: str | None = None):
        self.device = device

    def _fit(self, x, y, groups):
        xp = self._ops()
        x, y = xp.asarray(x), xp.asarray(y)
        mx, my = xp.mean(x, axis=0), xp.mean(y, axis=0)
        xc, yc = x - mx, y - my
        u, s, vt = xp.svd(xc.T @ yc)
        rotation = u @ vt
        norm = float(xp.sum(xc**2))
        self.scale_ = float(xp.sum(s) / norm) if norm > 0 else 0.0
        self.rotation_ = xp.numpy(rotation)
        self.shift_ = xp.numpy(my - self.scale_ * (mx @ rotation))

    def _predict(self, x):
        xp = self._ops()
        return xp.numpy(self.scale_ * (xp.asarray(x) @ xp.asarray(self.rotation_)) + xp.asarray(self.shift_))


class Diagonal(Rung):
    """``Y[:, j] = a_j X[:, j] + b_j``: every neuron rescaled and shifted on its own
    (least squares per neuron; a constant source neuron gets ``a_j = 0``). On a ``device``
    the per-neuron sums run there; ``predict`` (elementwise) runs in numpy."""

    name = "diagonal"
    same_width = True
    fitted_arrays = ("scale_", "shift_")

    def __init__(self, device: str | None = None):
        self.device = device

    def _fit(self, x, y, groups):
        xp = self._ops()
        x, y = xp.asarray(x), xp.asarray(y)
        mx, my = xp.mean(x, axis=0), xp.mean(y, axis=0)
        xc = x - mx
        var = xp.sum(xc**2, axis=0)
        cov = xp.sum(xc * (y - my), axis=0)
        scale = xp.quotient_where_positive(cov, var)
        self.scale_, self.shift_ = xp.numpy(scale), xp.numpy(my - scale * mx)

    def _predict(self, x):
        return x * self.scale_ + self.shift_
