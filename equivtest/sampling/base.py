"""The sampling protocol: where points come from, and how their neighbourhoods are drawn.

A :class:`Sampler` pairs a *point source* (grid, data set, ...) with a *neighbourhood
strategy* (Gaussian in input space, ...). Both are small objects with one method that
takes a ``numpy.random.Generator``, so later sources (sequences, embedding-space
neighbourhoods) plug in without changing any caller.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np

from ..errors import EquivtestError


@dataclass(frozen=True)
class SampleSet:
    """N samples and, for each, M neighbourhood points.

    ``samples`` has shape ``(N, *input_shape)``; ``neighbourhoods`` has shape
    ``(N, M, *input_shape)``.
    """

    samples: np.ndarray
    neighbourhoods: np.ndarray

    def __post_init__(self):
        s, nb = self.samples, self.neighbourhoods
        if nb.ndim < 2 or nb.shape[0] != s.shape[0] or nb.shape[2:] != s.shape[1:]:
            raise EquivtestError(
                f"neighbourhoods of shape {nb.shape} do not fit samples of shape {s.shape}; "
                "expected (N, M, *input_shape) with N and input_shape matching the samples"
            )

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def neighbourhood_size(self) -> int:
        return int(self.neighbourhoods.shape[1])

    def mapped(self, domain_map: Callable[[np.ndarray], np.ndarray]) -> "SampleSet":
        """Apply a map between input domains to samples and neighbourhoods alike."""
        n, m = self.neighbourhoods.shape[:2]
        flat = self.neighbourhoods.reshape(n * m, *self.neighbourhoods.shape[2:])
        mapped_nb = np.asarray(domain_map(flat))
        mapped_s = np.asarray(domain_map(self.samples))
        return SampleSet(mapped_s, mapped_nb.reshape(n, m, *mapped_nb.shape[1:]))


@runtime_checkable
class PointSource(Protocol):
    """Something that yields the N sample points, shape ``(N, *input_shape)``."""

    def points(self, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class NeighbourhoodStrategy(Protocol):
    """Something that draws M points around each sample, shape ``(N, M, *input_shape)``."""

    size: int

    def around(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@dataclass(frozen=True)
class Sampler:
    """Draws a :class:`SampleSet` deterministically from ``seed``."""

    points: PointSource
    neighbourhood: NeighbourhoodStrategy
    seed: int = 0

    def draw(self) -> SampleSet:
        rng = np.random.default_rng(self.seed)
        samples = np.asarray(self.points.points(rng), dtype=np.float64)
        return SampleSet(samples, self.neighbourhood.around(samples, rng))

    def describe(self) -> dict:
        """Plain-data description, for run records and cache keys."""
        return {
            "points": _describe(self.points),
            "neighbourhood": _describe(self.neighbourhood),
            "seed": self.seed,
        }


def _describe(obj) -> dict:
    fields = getattr(obj, "__dataclass_fields__", {})
    out = {"kind": type(obj).__name__}
    for name in fields:
        value = getattr(obj, name)
        if isinstance(value, np.ndarray):
            digest = hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()[:12]
            out[name] = f"array{tuple(value.shape)} sha1:{digest}"
        elif isinstance(value, (int, float, str, bool, type(None), tuple, list)):
            out[name] = value
        else:
            out[name] = type(value).__name__
    return out
