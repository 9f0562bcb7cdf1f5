"""Criterion results and their assertions.

Every criterion is a number for one direction (``"a->b"``: A's activations mapped
into B) or one network (``"a"``/``"b"`` for Whitney). A threshold turns it into a
pass/fail; ``EquivalenceResult.assert_equivalent`` raises one readable failure
listing every criterion that missed its threshold.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, replace
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from .errors import EquivtestError

# name -> (higher is better, description); extend with register_criterion
CRITERIA = {
    "activation_mse": (False, "MSE of transformed vs. true activations on the test inputs"),
    "output_mse": (False, "MSE of the stitched network's output vs. the target network's"),
    "agreement": (True, "share of test inputs where the stitched and target networks predict the same class"),
    "word_agreement": (True, "1 - word error rate of the stitched network's transcripts against the target's own"),
    "diffusion_residual": (False, "MSE of aligned vs. true diffusion coordinates of the samples"),
    "neighbour_overlap": (True, "share of each sample's nearest samples (Mahalanobis) that both networks agree on"),
    "kernel_components": (False, "diffusion-map eigenvalues within 1e-6 of 1: pieces the kernel graph falls into (1: connected)"),
    "whitney": (True, "narrowest width up to the layer, against 2d+1"),
    "accuracy_drop": (False, "target network's own test accuracy minus the stitched network's (a suite's labels)"),
    "null_activation_mse": (False, "activation MSE of a fit on randomly re-paired samples (median over shuffles)"),
    "null_ratio": (False, "activation_mse / null_activation_mse: how much better than chance pairing"),
    # reference measures, on the same activations (see equivtest.measures)
    "cka": (True, "linear CKA of the two networks' sample activations (1: same up to rotation and scale)"),
    "cka_debiased": (True, "debiased linear CKA of the sample activations"),
    "procrustes_distance": (False, "angular Procrustes shape distance of the sample activations (0: same shape)"),
    "linear_activation_mse": (False, "activation MSE of a least-squares linear map fitted on the samples"),
    "linear_output_mse": (False, "output MSE of the network stitched through that linear map"),
    "linear_agreement": (True, "prediction agreement of the network stitched through that linear map"),
    # weight-space distances for same-architecture pairs (see equivtest.weights)
    "weight_quantile_loss": (False, "Q-quantile (pinball) loss of the weight differences a - b, Q = 0.5"),
    "weight_norm_difference": (False, "| ||w_a||_2 - ||w_b||_2 | of the flattened weights"),
    "weight_mape": (False, "mean absolute percentage error of w_a against w_b (epsilon 1e-3), in percent"),
    "weight_layerwise_mse": (False, "sum over layers of each layer's weight MSE (layer-wise normalised MSE)"),
    "weight_js": (False, "Jensen-Shannon divergence of the weight histograms (nats, 64 shared bins)"),
    "weight_w2": (False, "exact 1-D 2-Wasserstein distance between the weight distributions"),
    "weight_sinkhorn_w2": (False, "entropic (Sinkhorn) 2-Wasserstein distance between the weight distributions"),
    "weight_fft_l1": (False, "mean absolute difference of the weight vectors' discrete Fourier transforms"),
    "weight_gromov_wasserstein": (False, "Gromov-Wasserstein discrepancy of the weights as 1-D point clouds"),
    "weight_bottleneck": (False, "bottleneck distance of the weight profiles' 0-dim persistence diagrams"),
    "jacobian_frobenius": (False, "RMS over inputs of ||J_a(x) - J_b(x)||_F, input Jacobians of the outputs"),
    # the merge suite (equivtest_thesis.experiments.merge, package equivtest-thesis)
    "normalised_accuracy": (True, "accuracy on C1 u C2 of a merged network / that of the network trained on C1 u C2"),
    "merge_gain": (True, "accuracy on C1 u C2 of the merger's prediction minus that of plain weight averaging"),
}

_BUILT_IN = frozenset(CRITERIA)


def register_criterion(name: str, *, higher_is_better: bool, description: str, replace: bool = False) -> None:
    """Make ``name`` a criterion that results, thresholds and baselines know.

    Each criterion carries its own direction: ``higher_is_better=True`` for scores such
    as agreement, ``False`` for errors. Registering a known name again is an error unless
    ``replace=True`` (and the built-in criteria cannot be replaced), so two plugins cannot
    silently give one name two meanings.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise EquivtestError(f"a criterion name is an identifier such as 'my_score', got {name!r}")
    if not isinstance(higher_is_better, bool):
        raise EquivtestError(f"higher_is_better must be True or False, got {higher_is_better!r}")
    if name in _BUILT_IN:
        raise EquivtestError(f"{name!r} is a built-in criterion; register yours under another name")
    if name in CRITERIA and not replace:
        raise EquivtestError(f"criterion {name!r} is already registered; pass replace=True to redefine it")
    CRITERIA[name] = (higher_is_better, str(description))


class EquivalenceFailure(AssertionError):
    """Raised by :meth:`EquivalenceResult.assert_equivalent`; the message lists each failure."""


@dataclass(frozen=True)
class Criterion:
    name: str
    direction: str
    value: float
    threshold: float | None = None
    higher_is_better: bool = False
    detail: str = ""

    @property
    def passed(self) -> bool | None:
        """``None`` without a threshold; a NaN value never passes a threshold."""
        if self.threshold is None:
            return None
        if math.isnan(self.value):
            return False
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def with_threshold(self, threshold: float | None) -> "Criterion":
        return replace(self, threshold=threshold)

    def describe_failure(self) -> str:
        relation = ">=" if self.higher_is_better else "<="
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name} [{self.direction}] = {self.value:.4g}, required {relation} {self.threshold:.4g}{extra}"

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass(frozen=True)
class EvaluationArrays:
    """What the criteria were computed on, for reports and baselines (read-only arrays).

    ``inputs``: the test inputs where they are numeric (``None`` for text or audio);
    ``activations[side]``: the test rows of each network's layer; ``groups``: the test
    input each row came from; ``outputs[side]``: each network's own output (an array for
    fixed-shape networks, a list of answers for transformers networks);
    ``predictions[direction]``: the transformation's rows; ``stitched[direction]``: the
    stitched network's output or answers.
    """

    inputs: Any
    activations: Mapping[str, Any]
    groups: Any
    outputs: Mapping[str, Any]
    predictions: Mapping[str, Any]
    stitched: Mapping[str, Any]

    def __post_init__(self):
        for name in ("activations", "outputs", "predictions", "stitched"):
            object.__setattr__(self, name, MappingProxyType({k: _frozen(v) for k, v in dict(getattr(self, name)).items()}))
        object.__setattr__(self, "inputs", _frozen(self.inputs))
        object.__setattr__(self, "groups", _frozen(self.groups))


def _frozen(value):
    if isinstance(value, np.ndarray):
        value = value.view()
        value.flags.writeable = False
        return value
    if isinstance(value, list):
        return tuple(value)
    return value


@dataclass(frozen=True)
class EquivalenceResult:
    """All criteria of one fitted pair on one set of test inputs: a value.

    Nothing changes a result in place: :meth:`with_thresholds` and
    :meth:`assert_equivalent` return new results. ``arrays`` (set by ``evaluate``) holds
    what the criteria were computed on; it is not part of the result's equality.
    """

    pair: str
    criteria: tuple
    info: Mapping = field(default_factory=dict)
    arrays: EvaluationArrays | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "criteria", tuple(self.criteria))
        object.__setattr__(self, "info", MappingProxyType(dict(self.info)))

    def get(self, name: str, direction: str) -> Criterion:
        for c in self.criteria:
            if c.name == name and c.direction == direction:
                return c
        have = sorted({(c.name, c.direction) for c in self.criteria})
        raise KeyError(f"no criterion {name!r} for {direction!r}; this result has {have}")

    def value(self, name: str, direction: str) -> float:
        return self.get(name, direction).value

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.criteria)

    def derive(self, **changes) -> "EquivalenceResult":
        """A new result with ``changes`` (criteria, info); the arrays come along.

        The one place new results are made from old ones, so that a caller that follows
        results (the pytest plugin records what a test asserted) can override it.
        """
        return replace(self, **changes)

    def with_info(self, **info) -> "EquivalenceResult":
        return self.derive(info={**self.info, **info})

    def with_thresholds(self, thresholds: Mapping[str, "float | Mapping[str, float] | None"]) -> "EquivalenceResult":
        """A new result with thresholds: ``{name: number}`` for every direction, or
        ``{name: {direction: number or None}}``; ``None`` makes a criterion informative
        only. Unknown names or directions are an error."""
        known = {c.name for c in self.criteria}
        unknown = set(thresholds) - known
        if unknown:
            raise EquivtestError(f"unknown criteria {sorted(unknown)}; this result has {sorted(known)}")
        updated = []
        for c in self.criteria:
            t = thresholds.get(c.name, c.threshold)
            if isinstance(t, Mapping):
                bad = set(t) - {x.direction for x in self.criteria if x.name == c.name}
                if bad:
                    raise EquivtestError(f"criterion {c.name!r} has no direction(s) {sorted(bad)}")
                t = t.get(c.direction, c.threshold)
            if t is not None:
                try:
                    t = float(t)
                except (TypeError, ValueError):
                    raise EquivtestError(f"threshold of {c.name!r} must be a number or None, got {t!r}") from None
                if math.isnan(t):
                    raise EquivtestError(f"threshold of {c.name!r} is NaN; give a number, or None for no threshold")
            updated.append(c.with_threshold(t))
        return self.derive(criteria=tuple(updated))

    def apply_thresholds(self, thresholds) -> "EquivalenceResult":
        """Deprecated name of :meth:`with_thresholds` (results are values: use the return value)."""
        return self.with_thresholds(thresholds)

    def failures(self) -> list[Criterion]:
        return [c for c in self.criteria if c.passed is False]

    def assert_equivalent(self, **thresholds) -> "EquivalenceResult":
        """A new result with ``thresholds`` applied; fails listing every miss."""
        __tracebackhide__ = True
        checked = self.with_thresholds(thresholds)
        failed = checked.failures()
        if failed:
            lines = "\n".join(f"  - {c.describe_failure()}" for c in failed)
            raise EquivalenceFailure(f"pair {self.pair!r} is not equivalent by {len(failed)} criterion(s):\n{lines}")
        return checked

    def to_dict(self) -> dict:
        return {"pair": self.pair, "passed": self.passed, "criteria": [c.to_dict() for c in self.criteria],
                "info": dict(self.info)}

    @classmethod
    def from_dict(cls, data: dict) -> "EquivalenceResult":
        fields = ("name", "direction", "value", "threshold", "higher_is_better", "detail")
        return cls(data["pair"], [Criterion(**{k: c[k] for k in fields}) for c in data["criteria"]], dict(data.get("info", {})))


Evaluation = EquivalenceResult  # what ``evaluate`` returns: criteria plus ``arrays``


def criterion(name: str, direction: str, value: float, detail: str = "") -> Criterion:
    try:
        higher, _ = CRITERIA[name]
    except KeyError:
        raise EquivtestError(f"unknown criterion {name!r}; register it first with "
                             "equivtest.register_criterion(name, higher_is_better=..., description=...)") from None
    return Criterion(name, direction, float(value), None, higher, detail)
