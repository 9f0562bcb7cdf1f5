"""Criterion results and their assertions.

Every criterion is a number for one direction (``"a->b"``: A's activations mapped
into B) or one network (``"a"``/``"b"`` for Whitney). A threshold turns it into a
pass/fail; ``EquivalenceResult.assert_equivalent`` raises one readable failure
listing every criterion that missed its threshold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Mapping

from .errors import EquivtestError

# name -> (higher is better, description)
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
        if self.threshold is None:
            return None
        return self.value >= self.threshold if self.higher_is_better else self.value <= self.threshold

    def with_threshold(self, threshold: float | None) -> "Criterion":
        return replace(self, threshold=threshold)

    def describe_failure(self) -> str:
        relation = ">=" if self.higher_is_better else "<="
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.name} [{self.direction}] = {self.value:.4g}, required {relation} {self.threshold:.4g}{extra}"

    def to_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


@dataclass
class EquivalenceResult:
    """All criteria of one fitted pair on one set of test inputs."""

    pair: str
    criteria: list[Criterion]
    info: dict = field(default_factory=dict)

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

    def with_thresholds(self, thresholds: Mapping[str, "float | Mapping[str, float] | None"]) -> "EquivalenceResult":
        """A copy with ``thresholds`` applied (see :meth:`apply_thresholds`)."""
        return EquivalenceResult(self.pair, list(self.criteria), dict(self.info)).apply_thresholds(thresholds)

    def apply_thresholds(self, thresholds: Mapping[str, "float | Mapping[str, float] | None"]) -> "EquivalenceResult":
        """Set thresholds in place: ``{name: number}`` for every direction, or
        ``{name: {direction: number or None}}``; ``None`` makes a criterion informative
        only. Unknown names or directions are an error. Returns ``self``."""
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
            updated.append(c.with_threshold(None if t is None else float(t)))
        self.criteria = updated
        return self

    def failures(self) -> list[Criterion]:
        return [c for c in self.criteria if c.passed is False]

    def assert_equivalent(self, **thresholds) -> "EquivalenceResult":
        """Apply ``thresholds`` in place (see :meth:`apply_thresholds`) and fail with every miss listed.

        Applying in place means reports written later show the thresholds asserted.
        """
        __tracebackhide__ = True
        checked = self.apply_thresholds(thresholds)
        failed = checked.failures()
        if failed:
            lines = "\n".join(f"  - {c.describe_failure()}" for c in failed)
            raise EquivalenceFailure(f"pair {self.pair!r} is not equivalent by {len(failed)} criterion(s):\n{lines}")
        return checked

    def to_dict(self) -> dict:
        return {"pair": self.pair, "passed": self.passed, "criteria": [c.to_dict() for c in self.criteria], "info": self.info}

    @classmethod
    def from_dict(cls, data: dict) -> "EquivalenceResult":
        fields = ("name", "direction", "value", "threshold", "higher_is_better", "detail")
        return cls(data["pair"], [Criterion(**{k: c[k] for k in fields}) for c in data["criteria"]], dict(data.get("info", {})))


def criterion(name: str, direction: str, value: float, detail: str = "") -> Criterion:
    higher, _ = CRITERIA[name]
    return Criterion(name, direction, float(value), None, higher, detail)

