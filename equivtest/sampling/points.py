"""Point sources: a grid on a box, and random draws from a data set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .._validation import as_whole_number
from ..errors import EquivtestError


@dataclass(frozen=True)
class GridPoints:
    """An even grid on the box ``[lower, upper]`` (per input dimension).

    Along each axis the points follow the thesis's formula (eq. 3.1)
    ``X_i = LB + i (UB - LB) / N`` for ``0 <= i < N``: the lower bound is included and
    the upper bound is not, so that the points tile the interval evenly. For a box of
    several dimensions the grid is the Cartesian product of the axes (``n`` points
    per axis, ``n ** D`` in all), ordered with the last axis varying fastest.
    """

    lower: float | Sequence[float]
    upper: float | Sequence[float]
    n: int

    def points(self, rng: np.random.Generator | None = None) -> np.ndarray:
        lower = np.atleast_1d(np.asarray(self.lower, dtype=np.float64))
        upper = np.atleast_1d(np.asarray(self.upper, dtype=np.float64))
        if lower.shape != upper.shape or lower.ndim != 1:
            raise EquivtestError(
                f"lower {self.lower!r} and upper {self.upper!r} must be scalars or "
                "sequences of equal length"
            )
        if not np.all(upper > lower):
            raise EquivtestError(f"each upper bound must exceed its lower bound: {self.lower!r}, {self.upper!r}")
        if as_whole_number(self.n, "n (points per axis)") < 1:
            raise EquivtestError(f"n must be a positive number of points per axis, got {self.n}")
        i = np.arange(int(self.n), dtype=np.float64)
        axes = [lo + i * (hi - lo) / self.n for lo, hi in zip(lower, upper)]
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=1)


@dataclass(frozen=True)
class DatasetPoints:
    """``n`` points drawn without replacement from ``data`` (shape ``(n_data, *input_shape)``)."""

    data: np.ndarray
    n: int

    def points(self, rng: np.random.Generator) -> np.ndarray:
        data = np.asarray(self.data)
        as_whole_number(self.n, "n (samples to draw)")
        if not 0 < self.n <= len(data):
            raise EquivtestError(
                f"cannot draw {self.n} samples from a data set of {len(data)} items; "
                f"ask for between 1 and {len(data)}"
            )
        idx = np.sort(rng.choice(len(data), size=self.n, replace=False))
        points = data[idx]
        if np.issubdtype(points.dtype, np.floating) and not np.isfinite(points).all():
            bad = np.argwhere(~np.isfinite(points))[0]
            raise EquivtestError(
                f"data set item {idx[bad[0]]} holds a non-finite value ({points[tuple(bad)]} at position "
                f"{tuple(int(i) for i in bad[1:])}); drop or repair such items before sampling from them"
            )
        return points
