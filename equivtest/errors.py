"""Errors raised for a caller's mistakes.

Each is a ``ValueError`` (or ``TypeError``) subclass so plain ``except ValueError``
still works; the message always says what was wrong and how to fix it.
"""

from __future__ import annotations


class EquivtestError(ValueError):
    """Base class of every input error equivtest raises."""


class ActivationError(EquivtestError):
    """Captured activations are unusable (NaN/inf, wrong shape, mismatched counts)."""


class LayerNotFoundError(EquivtestError, LookupError):
    """A layer path names no submodule of the network."""


class FitConfigError(EquivtestError):
    """Hyper-parameters that cannot work with the data given (e.g. too few samples)."""


class TransformFileError(EquivtestError):
    """A saved transformation is truncated, corrupted, altered or of an unknown version."""


class NotFittedError(EquivtestError, AttributeError):
    """An estimator was used before ``fit``."""
