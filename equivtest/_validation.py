"""Input checks shared by every stage, so each error message is written once."""

from __future__ import annotations

import numpy as np

from .errors import ActivationError


def as_finite_float64(array, name: str, ndim: int | None = None) -> np.ndarray:
    """Return ``array`` as a float64 ndarray, refusing NaN/inf and wrong ranks."""
    out = np.asarray(array, dtype=np.float64)
    if ndim is not None and out.ndim != ndim:
        raise ActivationError(
            f"{name} must have {ndim} dimensions, got shape {out.shape}; "
            "flatten per-sample features into one axis first"
        )
    if out.size == 0:
        raise ActivationError(f"{name} is empty (shape {out.shape}); capture at least one sample")
    bad = ~np.isfinite(out)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        kind = "NaN" if np.isnan(out[first]) else "inf"
        raise ActivationError(
            f"{name} contains {int(bad.sum())} non-finite values ({kind} first at index {first}); "
            "check the network's inputs and weights, or lower the neighbourhood scale delta "
            "if the network saturates"
        )
    return out
