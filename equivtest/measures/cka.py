"""Linear centred kernel alignment (CKA), plain and debiased."""

from __future__ import annotations

import numpy as np

from ..errors import ActivationError, FitConfigError
from . import Measure, centred, paired_activations

METHODS = ("auto", "features", "gram")
# The Gram path holds two N x N matrices; above this N "auto" never takes it.
GRAM_MAX_SAMPLES = 8192


class LinearCKA(Measure):
    r"""Linear CKA between activations ``X (N, Fx)`` and ``Y (N, Fy)`` of the same N inputs.

    With column-centred ``X`` and ``Y`` (Kornblith et al. 2019, eq. 5 there)::

        CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)

    which equals ``HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))`` for the linear kernels
    ``K = X X^T``, ``L = Y Y^T`` and ``HSIC(K, L) = tr(K H L H) / (N-1)^2``,
    ``H = I - 11^T/N``. It lies in [0, 1], is 1 for ``Y = s X Q + 1 c^T``
    (``Q`` orthogonal, ``s != 0``) and is invariant to permuting columns.
    Computed in feature space by default: O(N F^2) time, no N x N matrix.

    ``debiased=True`` replaces each HSIC by the unbiased estimator of Song et al.
    (2012, eq. 5), as used for CKA by Nguyen, Raghu and Kornblith (2021). With
    ``K~`` and ``L~`` the Gram matrices with zeroed diagonals::

        HSIC_1(K, L) = 1/(N(N-3)) [ tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((N-1)(N-2))
                                    - 2/(N-2) 1^T K~ L~ 1 ]

    It removes the positive bias of the plain estimate for N not much larger than F
    (the plain CKA of independent data is about F/N, the debiased one about 0) and
    needs N >= 4. It can be slightly negative, and is undefined (an
    ``ActivationError``) when ``HSIC_1(K, K)``, a sum of squares, vanishes: all
    samples but one with the same activations. The three terms are also computed in
    feature space: on centred data ``1^T K~ 1 = -sum_i ||x_i||^2`` and
    ``K~ 1 = -(||x_i||^2)_i``.

    Parameters
    ----------
    debiased
        Use the unbiased HSIC estimator.
    method
        ``"features"`` (``X^T Y`` products), ``"gram"`` (N x N Gram matrices, cheaper
        when N is below about Fx + Fy) or ``"auto"`` (the cheaper one, Gram only for
        N <= 8192). All give the same value up to rounding.

    Attributes
    ----------
    score_ : float
        The CKA value (higher is more similar).
    hsic_xy_, hsic_xx_, hsic_yy_ : float
        The HSIC estimates (``tr(KHLH)/(N-1)^2``, or ``HSIC_1`` when debiased).
    n_samples_ : int
    method_ : str
        ``"features"`` or ``"gram"``, the computation used.

    References
    ----------
    S. Kornblith, M. Norouzi, H. Lee, G. Hinton. Similarity of neural network
    representations revisited. ICML 2019.
    L. Song, A. Smola, A. Gretton, J. Bedo, K. Borgwardt. Feature selection via
    dependence maximization. JMLR 13, 2012.
    T. Nguyen, M. Raghu, S. Kornblith. Do wide and deep networks learn the same
    things? ICLR 2021.
    """

    higher_is_better = True
    _params = ("debiased", "method")

    def __init__(self, debiased: bool = False, method: str = "auto"):
        self.debiased = debiased
        self.method = method

    def fit(self, X, Y) -> "LinearCKA":
        if self.method not in METHODS:
            raise FitConfigError(f"LinearCKA method must be one of {METHODS}, got {self.method!r}")
        name = "debiased linear CKA" if self.debiased else "linear CKA"
        x, y = paired_activations(X, Y, min_samples=4 if self.debiased else 2, measure=name)
        x, y = centred(x, "X", name), centred(y, "Y", name)
        n, fx, fy = x.shape[0], x.shape[1], y.shape[1]
        method = self.method
        if method == "auto":
            cheaper = n * (fx + fy) < fx * fx + fy * fy + fx * fy
            method = "gram" if cheaper and n <= GRAM_MAX_SAMPLES else "features"
        # tr(K L) for the linear kernels: ||X^T Y||_F^2 = <X X^T, Y Y^T>_F.
        if method == "gram":
            k, l_ = x @ x.T, y @ y.T
            tr = {"xx": np.vdot(k, k), "yy": np.vdot(l_, l_), "xy": np.vdot(k, l_)}
        else:
            xtx, yty, xty = x.T @ x, y.T @ y, x.T @ y
            tr = {"xx": np.vdot(xtx, xtx), "yy": np.vdot(yty, yty), "xy": np.vdot(xty, xty)}
        if self.debiased:
            dx, dy = np.einsum("ij,ij->i", x, x), np.einsum("ij,ij->i", y, y)  # Gram diagonals
            diag = {"xx": (dx, dx), "yy": (dy, dy), "xy": (dx, dy)}
            hsic = {key: _unbiased_hsic(tr[key], *diag[key], n) for key in tr}
        else:
            hsic = {key: float(value) / (n - 1) ** 2 for key, value in tr.items()}
        for key, label in (("xx", "X"), ("yy", "Y")):
            # HSIC_1(K, K) = ||U-centred K||_F^2 / (N(N-3)) >= 0 (Szekely and Rizzo 2014);
            # it is 0 when all samples but one coincide. Below 1e-12 of the trace term
            # it is rounding noise, and the ratio would be meaningless.
            if not hsic[key] > (1e-12 * tr[key] / (n * (n - 3)) if self.debiased else 0.0):
                raise ActivationError(_degenerate_message(name, label, hsic[key]))
        self.hsic_xy_, self.hsic_xx_, self.hsic_yy_ = hsic["xy"], hsic["xx"], hsic["yy"]
        self.score_ = float(hsic["xy"] / np.sqrt(hsic["xx"] * hsic["yy"]))
        self.n_samples_, self.method_ = n, method
        return self


def _unbiased_hsic(trace_kl: float, dk: np.ndarray, dl: np.ndarray, n: int) -> float:
    """Song et al.'s HSIC_1 from tr(K L) and the Gram diagonals of column-centred data."""
    trace = trace_kl - np.dot(dk, dl)  # tr(K~ L~)
    sum_k, sum_l = -dk.sum(), -dl.sum()  # 1^T K~ 1 (the full Gram of centred data sums to 0)
    cross = np.dot(dk, dl)  # 1^T K~ L~ 1 = (K~ 1) . (L~ 1), with K~ 1 = -dk
    value = trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * cross / (n - 2)
    return float(value / (n * (n - 3)))


def _degenerate_message(name: str, label: str, value: float) -> str:
    return (
        f"{name}: the HSIC estimate of {label} with itself is {value:.3g}, zero up to rounding, so "
        "CKA is undefined (with the unbiased estimator this happens when all samples but one "
        "have the same activations); use more distinct samples, or the plain estimator"
    )
