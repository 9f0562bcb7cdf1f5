"""Turn what a caller passes (arrays, tensors, lists, torch modules) into float64 vectors."""

from __future__ import annotations

import numpy as np

from .errors import WeightSpaceError


def as_vector(value, name: str) -> np.ndarray:
    """A finite, non-empty 1-D float64 copy of ``value``.

    A ``torch.nn.Module`` is flattened with :func:`~equivtest.weights.flatten_parameters`;
    a tensor is detached and moved to the CPU; anything of higher rank is flattened."""
    if hasattr(value, "named_parameters"):
        from .flat import flatten_parameters

        value = flatten_parameters(value)[0]
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    try:
        out = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise WeightSpaceError(f"{name} is not numeric ({exc}); pass a 1-D array, tensor or torch module") from None
    if out.size == 0:
        raise WeightSpaceError(f"{name} is empty; pass the flattened weights (at least one value)")
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        kind = "NaN" if np.isnan(out[first]) else "inf"
        raise WeightSpaceError(
            f"{name} contains {int(bad.sum())} non-finite value(s) ({kind} first at index {first}); "
            "a diverged training or a bad load produced it: check the network before comparing weights"
        )
    return out


def paired(a, b, measure: str, *, same_length: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Both vectors checked; ``same_length`` demands equal sizes (element-wise measures)."""
    x, y = as_vector(a, f"{measure}: the first vector"), as_vector(b, f"{measure}: the second vector")
    if same_length and x.size != y.size:
        raise WeightSpaceError(
            f"{measure} compares weights element by element, but the vectors have {x.size} and {y.size} "
            "entries; compare networks of the same architecture (or use a distributional measure such as "
            "wasserstein2, jensen_shannon or gromov_wasserstein)"
        )
    return x, y


def positive(value, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise WeightSpaceError(f"{name} must be a positive number, got {value!r}")
    return v
