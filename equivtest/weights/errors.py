"""The error of the weight-space module."""

from __future__ import annotations

from ..errors import EquivtestError


class WeightSpaceError(EquivtestError):
    """Weight vectors that cannot be compared (different length, empty, NaN/inf, bad options)."""
