"""The Mahalanobis kernel as a datafold kernel, and datafold's ``DiffusionMaps``.

Only :func:`equivtest.geometry.diffusion_coordinates` (and ``MahalanobisDmapKernel``)
import this module, so datafold loads when a diffusion map is fitted, not with the
geometry.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import scipy.sparse

from . import dmaps
from .kernel import gaussian_kernel, mahalanobis_sq_dense, mahalanobis_sq_knn

with warnings.catch_warnings():
    # datafold imports pandas/sklearn pieces that warn on import; not ours to fix.
    warnings.simplefilter("ignore")
    try:
        from datafold.dynfold import DiffusionMaps
        from datafold.pcfold.kernels import PCManifoldKernel
    except ImportError as error:
        raise ImportError(
            f"equivtest's diffusion maps (the thesis's method) run through datafold, which did not import ({error}); "
            "install equivtest's pinned stack: pip install datafold==2.0.2 'numpy<1.27' 'scipy<1.12' 'scikit-learn~=1.2'"
        ) from error


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
        if not scipy.sparse.issparse(kernel) and kernel.shape[0] >= dmaps.SPARSE_FROM:
            # Entries below 1e-16 (the diagonal is 1) do not change the eigenpairs in
            # double precision, and without them datafold's shift-invert eigensolver
            # factorises a sparse matrix instead of a dense one.
            kernel = scipy.sparse.csr_matrix(np.where(kernel >= dmaps.DROP_BELOW, kernel, 0.0))
        return kernel


_SHARED = ("factors", "_d2")  # read-only inputs a copy of the kernel shares (see __deepcopy__)


class PrecomputedDistances(MahalanobisDmapKernel):
    """The same kernel, reusing distances already computed to estimate epsilon."""

    def __init__(self, kernel: MahalanobisDmapKernel, d2):
        super().__init__(kernel.factors, kernel.epsilon, kernel.k_neighbours, kernel.device)
        self._d2 = d2

    def squared_distances(self, X):
        return self._d2
