"""Diffusion maps with the Mahalanobis kernel, through datafold (step 5)."""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from .._validation import as_finite_float64
from ..errors import FitConfigError
from .kernel import (
    check_epsilon_k,
    fewest_neighbours,
    gaussian_kernel,
    mahalanobis_sq_dense,
    mahalanobis_sq_knn,
    median_epsilon,
    nearest_samples,
)

with warnings.catch_warnings():
    # datafold imports pandas/sklearn pieces that warn on import; not ours to fix.
    warnings.simplefilter("ignore")
    from datafold.dynfold import DiffusionMaps
    from datafold.pcfold.kernels import PCManifoldKernel


class MahalanobisDmapKernel(PCManifoldKernel):
    """datafold kernel: ``exp(-d2 / epsilon)`` over Mahalanobis squared distances.

    The precision factors of the samples' neighbourhoods are given up front, so the
    kernel is only defined on the samples it was built for (``Y`` must be ``None``):
    new points reach diffusion space through the RBF interpolation instead.
    """

    def __init__(self, factors: np.ndarray, epsilon: float, k_neighbours: int | None = None, device: str | None = None):
        self.factors = factors
        self.epsilon = epsilon
        self.k_neighbours = k_neighbours
        self.device = device
        super().__init__(is_symmetric=True)

    def __deepcopy__(self, memo):
        """A copy that shares the precision factors (and precomputed distances): they are
        the fit's inputs, only ever read, and can be gigabytes (N F r float64 values), while
        datafold deep-copies its kernel in every fit, which doubled a fit's peak memory."""
        twin = copy.copy(self)
        memo[id(self)] = twin
        for name, value in vars(self).items():
            if name not in _SHARED:
                setattr(twin, name, copy.deepcopy(value, memo))
        return twin

    def squared_distances(self, X):
        if self.k_neighbours is None:
            return mahalanobis_sq_dense(X, self.factors, self.device)
        return mahalanobis_sq_knn(X, self.factors, self.k_neighbours)

    def __call__(self, X, Y=None, **kernel_kwargs):
        if Y is not None:
            raise NotImplementedError(
                "the Mahalanobis kernel has no out-of-sample form (new points have no "
                "neighbourhood covariance); map new points with the fitted RBF interpolation"
            )
        return self.evaluate(self.squared_distances(np.asarray(X)))

    def evaluate(self, distance_matrix):
        kernel = gaussian_kernel(distance_matrix, self.epsilon)
        if not scipy.sparse.issparse(kernel) and kernel.shape[0] >= SPARSE_FROM:
            # Entries below 1e-16 (the diagonal is 1) do not change the eigenpairs in
            # double precision, and without them datafold's shift-invert eigensolver
            # factorises a sparse matrix instead of a dense one.
            kernel = scipy.sparse.csr_matrix(np.where(kernel >= DROP_BELOW, kernel, 0.0))
        return kernel


_SHARED = ("factors", "_d2")  # read-only inputs a copy of the kernel shares (see __deepcopy__)
SPARSE_FROM = 2000  # samples; below this a dense eigensolve is fast anyway
DROP_BELOW = 1e-16


@dataclass(frozen=True)
class DiffusionCoordinates:
    """Diffusion-map eigenvectors of the samples (column 0 the constant one)."""

    coordinates: np.ndarray  # (N, k)
    eigenvalues: np.ndarray  # (k,)
    epsilon: float
    nearest: np.ndarray | None = None  # (N, k <= epsilon_k): each sample's nearest samples by d2


def diffusion_coordinates(
    samples,
    factors,
    n_eigenvectors: int,
    *,
    epsilon: float | str = "median",
    epsilon_k: int = 10,
    k_neighbours: int | None = None,
    device: str | None = None,
) -> DiffusionCoordinates:
    """Fit datafold's ``DiffusionMaps`` on the samples with the Mahalanobis kernel.

    ``epsilon`` is a number, or ``"median"``: the median over samples of the squared
    distance to the ``epsilon_k``-th nearest neighbour (see :func:`median_knn_epsilon`).
    ``k_neighbours`` switches to a sparse kernel over k nearest neighbours; ``device``
    (a torch device such as ``"cuda"``) computes the dense kernel with torch there.
    """
    x = as_finite_float64(samples, "sample activations", ndim=2)
    n = x.shape[0]
    if int(n_eigenvectors) < 2:
        raise FitConfigError(
            f"n_eigenvectors must be at least 2 (the constant one and one more), got {n_eigenvectors}"
        )
    if n <= n_eigenvectors:
        raise FitConfigError(
            f"{n} samples cannot give {n_eigenvectors} diffusion-map eigenvectors; "
            f"use more than {n_eigenvectors} samples or ask for at most {n - 1} eigenvectors"
        )
    kernel = MahalanobisDmapKernel(factors, 1.0, k_neighbours, device)
    d2 = kernel.squared_distances(x)
    median = isinstance(epsilon, str)
    if median:
        if epsilon != "median":
            raise FitConfigError(f"epsilon must be a positive number or 'median', got {epsilon!r}")
        check_epsilon_k(d2, epsilon_k)
    elif not float(epsilon) > 0:
        raise FitConfigError(f"epsilon must be positive, got {epsilon}")
    # Each sample's epsilon_k nearest samples serve the median rule and the neighbour-overlap
    # diagnostic alike; with a given epsilon, fewer stored neighbours only shorten the diagnostic.
    k_nearest = min(int(epsilon_k), fewest_neighbours(d2))
    nearest, nearest_d2 = nearest_samples(d2, k_nearest) if k_nearest >= 1 else (None, None)
    eps = median_epsilon(nearest_d2[:, -1]) if median else float(epsilon)
    kernel.epsilon = eps
    dmap = DiffusionMaps(kernel=_PrecomputedDistances(kernel, d2), n_eigenpairs=int(n_eigenvectors))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=scipy.sparse.SparseEfficiencyWarning)
        try:
            dmap.fit(x)
        except scipy.sparse.linalg.ArpackNoConvergence:
            raise FitConfigError(
                f"the diffusion-map eigensolver did not converge for {n} samples at epsilon={eps:.4g}: the "
                "kernel graph is (nearly) disconnected, so eigenvalue 1 is (nearly) repeated. Raise epsilon "
                "(or epsilon_k for the median rule), draw samples that cover the input manifold more densely, "
                "or ask for fewer eigenvectors"
            ) from None
    vectors = np.asarray(dmap.eigenvectors_, dtype=np.float64)
    values = np.asarray(dmap.eigenvalues_, dtype=np.float64)
    order = np.argsort(-np.abs(values))
    values, vectors = np.real(values[order]), np.real(vectors[:, order])
    # Fix each eigenvector's sign (largest entry positive) so fits are reproducible.
    signs = np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(vectors.shape[1])])
    return DiffusionCoordinates(vectors * signs, values, eps, nearest)


class _PrecomputedDistances(MahalanobisDmapKernel):
    """The same kernel, reusing distances already computed to estimate epsilon."""

    def __init__(self, kernel: MahalanobisDmapKernel, d2):
        super().__init__(kernel.factors, kernel.epsilon, kernel.k_neighbours, kernel.device)
        self._d2 = d2

    def squared_distances(self, X):
        return self._d2
