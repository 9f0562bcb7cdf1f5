"""Neighbourhood geometry: covariances, the Mahalanobis kernel, diffusion maps."""

from .covariance import DEFAULT_RCOND, neighbourhood_covariances, precision_factors, pseudo_inverses
from .dmaps import DiffusionCoordinates, diffusion_coordinates
from .kernel import (
    gaussian_kernel,
    mahalanobis_sq_dense,
    mahalanobis_sq_knn,
    median_knn_epsilon,
    nearest_samples,
    neighbour_overlap,
)


def __getattr__(name: str):
    if name == "MahalanobisDmapKernel":  # a datafold kernel: datafold loads on first use (see dmaps)
        from .dmaps import __getattr__ as lazy

        return lazy(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_RCOND",
    "DiffusionCoordinates",
    "MahalanobisDmapKernel",
    "diffusion_coordinates",
    "gaussian_kernel",
    "mahalanobis_sq_dense",
    "mahalanobis_sq_knn",
    "median_knn_epsilon",
    "nearest_samples",
    "neighbour_overlap",
    "neighbourhood_covariances",
    "precision_factors",
    "pseudo_inverses",
]
