"""Reference similarity measures between two activation matrices.

Baselines to set beside the diffusion-map transformation: each compares the
activations ``X (N, Fx)`` and ``Y (N, Fy)`` of two networks on the same N inputs.
They follow the estimator style of scikit-learn and netrep: parameters in
``__init__``, ``fit(X, Y)`` returns ``self``, fitted attributes end in ``_``, and
``score_`` is the measure's value (``higher_is_better`` says which way is good).

- :class:`LinearCKA`: linear centred kernel alignment, plain or debiased.
- :class:`ProcrustesDistance`: the orthogonal Procrustes (angular) shape distance.
- :class:`LinearStitch` and :func:`linear_stitch_outputs`: an affine map from one
  network's layer to the other's, and the stitched network's outputs through it.

Only numpy is needed to import this package; torch is imported when a network is
stitched.
"""

from __future__ import annotations

import numpy as np

from .._validation import as_finite_float64
from ..errors import ActivationError, NotFittedError

# The shared helpers are defined before the submodules are imported: the submodules
# import them from this package, which is always initialised first.

# A measure is given activations as they are (no neighbourhoods, no delta): the remedy
# for a NaN or inf is in the inputs that produced them or in the rows passed.
MEASURE_FIX = (
    "the measure is defined on finite activations only: leave out the inputs whose activations are not "
    "finite, or find why the network gives NaN or inf on them (its inputs or weights)"
)


def paired_activations(X, Y, *, min_samples: int, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and ``Y`` as finite float64 ``(N, F)`` matrices with the same N >= ``min_samples``."""
    x = as_finite_float64(X, f"{measure}: activations X", ndim=2, fix=MEASURE_FIX)
    y = as_finite_float64(Y, f"{measure}: activations Y", ndim=2, fix=MEASURE_FIX)
    if x.shape[0] != y.shape[0]:
        raise ActivationError(
            f"{measure}: X has {x.shape[0]} rows (samples) and Y has {y.shape[0]}; row i of both "
            "must be the activations of the same input i, so capture both networks on the same inputs"
        )
    if x.shape[0] < min_samples:
        raise ActivationError(
            f"{measure} needs at least {min_samples} samples, got {x.shape[0]}; capture more inputs"
        )
    return x, y


def centred(x: np.ndarray, label: str, measure: str) -> np.ndarray:
    """Columns minus their means; an error if nothing is left but rounding.

    Rows that are all the same (a dead or constant layer) leave, after centring,
    only rounding noise of order eps * max|x|; no measure of shape is defined then.
    """
    out = x - x.mean(axis=0, keepdims=True)
    if np.max(np.abs(out)) <= 64 * np.finfo(np.float64).eps * np.max(np.abs(x)):
        raise ActivationError(
            f"{measure}: {label} has no variance (every row is the same), so the measure is "
            "undefined; choose a layer whose activations vary over the inputs"
        )
    return out


class Measure:
    """Shared plumbing: ``get_params``, ``repr`` and the fitted check."""

    higher_is_better: bool = True
    _params: tuple[str, ...] = ()

    def get_params(self) -> dict:
        return {name: getattr(self, name) for name in self._params}

    def _check_fitted(self) -> None:
        if not hasattr(self, "score_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, Y) first")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


from .cka import LinearCKA  # noqa: E402
from .linear_stitch import LinearStitch, linear_stitch_outputs  # noqa: E402
from .procrustes import ProcrustesDistance  # noqa: E402

__all__ = ["LinearCKA", "LinearStitch", "Measure", "ProcrustesDistance", "linear_stitch_outputs"]
