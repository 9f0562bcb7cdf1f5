"""Samples and their neighbourhoods (step 1-2 of the method)."""

from .base import NeighbourhoodStrategy, PointSource, Sampler, SampleSet
from .neighbourhoods import GaussianNeighbourhood
from .points import DatasetPoints, GridPoints

__all__ = [
    "DatasetPoints",
    "GaussianNeighbourhood",
    "GridPoints",
    "NeighbourhoodStrategy",
    "PointSource",
    "SampleSet",
    "Sampler",
]
