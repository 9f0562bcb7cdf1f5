"""Diffusion maps with the Mahalanobis kernel, through datafold (step 5)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from .._validation import as_finite_float64
from ..errors import FitConfigError
from .kernel import check_epsilon_k, fewest_neighbours, median_epsilon, nearest_samples


def __getattr__(name: str):
    """``MahalanobisDmapKernel`` is a datafold kernel: importing it imports datafold (about a
    second, with pandas and scikit-learn), so it loads on first use, and the rest of the
    geometry (factors, distances) works where datafold is not installed."""
    if name == "MahalanobisDmapKernel":
        from ._datafold import MahalanobisDmapKernel

        return MahalanobisDmapKernel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    from ._datafold import DiffusionMaps, MahalanobisDmapKernel, PrecomputedDistances

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
    dmap = DiffusionMaps(kernel=PrecomputedDistances(kernel, d2), n_eigenpairs=int(n_eigenvectors))
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
