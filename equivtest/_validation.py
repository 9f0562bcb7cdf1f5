"""Input checks shared by every stage, so each error message is written once."""

from __future__ import annotations

import numpy as np

from .errors import ActivationError


# What to do about NaN or inf activations while fitting: the neighbourhoods are the
# caller's to choose, and too wide a neighbourhood can drive a network into overflow.
FIT_FIX = "check the network's inputs and weights, or lower the neighbourhood scale delta if the network saturates"


def rows_fix(kind: str) -> str:
    """The fix for non-finite rows that come from inputs alone (rows to map, rows a map of the
    ladder is fitted on): no neighbourhood is drawn for them, so delta is not the fix."""
    head = "these rows come from inputs, not from the fit's neighbourhoods (delta plays no part): "
    if kind == "inf":
        return (head + "the network overflowed on the inputs they came from; run it in float32 or float64 "
                "(not float16 or bfloat16), or leave out inputs far outside the range it was fitted on")
    return (head + "leave out the inputs that hold NaN or inf, or find where the network makes a NaN of finite "
            "inputs (an overflow that turns into NaN, e.g. in float16: run it in float32)")


def as_finite_float64(array, name: str, ndim: int | None = None, *, fix=FIT_FIX,
                      keep_float32: bool = False) -> np.ndarray:
    """Return ``array`` as a float64 ndarray, refusing NaN/inf and wrong ranks.

    ``fix`` ends the message about non-finite values: the remedy where the check runs, or a
    function of the kind found first (``"NaN"`` or ``"inf"``) that gives it.
    ``keep_float32``: a float32 array is checked and returned as it is, for a caller that
    converts it a block at a time (every float32 value is a float64 value, so nothing changes
    but the memory and the pass a whole conversion costs)."""
    keep = keep_float32 and getattr(array, "dtype", None) == np.float32
    out = np.asarray(array) if keep else np.asarray(array, dtype=np.float64)
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
            f"{fix(kind) if callable(fix) else fix}"
        )
    return out


def as_whole_number(value, name: str, *, minimum: int | None = None, error=None) -> int:
    """``value`` as an int, refusing anything that is not an integer (3.7 is not rounded down,
    and 3.0 or True are refused too) or lies below ``minimum``."""
    from numbers import Integral

    from .errors import EquivtestError

    error = error or EquivtestError
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise error(f"{name} must be a whole number (an int), got {value!r}; it is not rounded for you")
    if minimum is not None and value < minimum:
        raise error(f"{name} must be at least {minimum}, got {value}")
    return int(value)
