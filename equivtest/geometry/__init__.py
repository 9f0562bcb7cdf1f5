"""Neighbourhood geometry: covariances, the Mahalanobis kernel, diffusion maps."""

from .covariance import DEFAULT_RCOND, neighbourhood_covariances, precision_factors, pseudo_inverses
from .dmaps import DiffusionCoordinates, MahalanobisDmapKernel, diffusion_coordinates
from .kernel import (
    gaussian_kernel,
    mahalanobis_sq_dense,
    mahalanobis_sq_knn,
    median_knn_epsilon,
    nearest_samples,
    neighbour_overlap,
)

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
