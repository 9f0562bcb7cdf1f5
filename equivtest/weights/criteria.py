"""Weight-space distances as equivtest criteria, for pairs of same-architecture networks.

``weight_criteria(net_a, net_b)`` returns :class:`~equivtest.criteria.Criterion` values
(all lower-is-better) that an :class:`~equivtest.criteria.EquivalenceResult` can assert
with thresholds, e.g. "the merged network is within x of the jointly trained one"::

    result = weight_result(merged, joint, inputs=x_test)
    result.assert_equivalent(weight_layerwise_mse=0.05, jacobian_frobenius=2.0)

Direction ``"a->b"``: the measure takes B as the reference (quantile loss of ``a - b``,
MAPE relative to B); ``"a~b"``: the measure is symmetric.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from ..criteria import Criterion, EquivalenceResult, criterion
from . import distances as d
from .errors import WeightSpaceError
from .flat import flat_index, flatten_parameters

# criterion name -> (function of (vector a, vector b, index), direction, detail)
MEASURES = {
    "weight_quantile_loss": (lambda a, b, i: d.quantile_loss(a, b, 0.5), "a->b", "Q = 0.5"),
    "weight_norm_difference": (lambda a, b, i: d.norm_difference(a, b, 2), "a~b", "L2 norms"),
    "weight_mape": (lambda a, b, i: d.mape(a, b, 1e-3), "a->b", "percent, epsilon 1e-3"),
    "weight_layerwise_mse": (lambda a, b, i: d.layerwise_mse(a, b, i), "a~b", "per-layer MSE summed over layers"),
    "weight_js": (lambda a, b, i: d.jensen_shannon(a, b, 64), "a~b", "nats, 64 equal-width bins over the pooled range"),
    "weight_w2": (lambda a, b, i: d.wasserstein2(a, b), "a~b", "exact, 1-D by sorting"),
    "weight_sinkhorn_w2": (lambda a, b, i: d.sinkhorn_w2(a, b, 1e-3), "a~b", "eps = 1e-3 x mean cost, <= 256 quantiles"),
    "weight_fft_l1": (lambda a, b, i: d.fft_l1(a, b), "a~b", "mean |FFT(a - b)|"),
    "weight_gromov_wasserstein": (lambda a, b, i: d.gromov_wasserstein(a, b), "a~b", "square loss, <= 256 quantiles"),
    "weight_bottleneck": (lambda a, b, i: d.bottleneck(a, b), "a~b", "H0 of sub- and superlevel sets along the index"),
}
JACOBIAN = "jacobian_frobenius"
DEFAULT_MEASURES = tuple(MEASURES) + (JACOBIAN,)


def weight_criteria(net_a, net_b, measures: Iterable[str] | None = None, inputs=None) -> list[Criterion]:
    """The chosen weight-space measures between two networks of the same architecture.

    ``measures``: names from :data:`MEASURES` plus ``"jacobian_frobenius"`` (default:
    all; the Jacobian one only when ``inputs``, a batch of network inputs, is given).
    The networks must have identical parameter names and shapes."""
    ia, ib = flat_index(net_a), flat_index(net_b)
    if [(s.name, s.shape) for s in ia.slices] != [(s.name, s.shape) for s in ib.slices]:
        raise WeightSpaceError(
            f"weight criteria compare networks of the same architecture; these differ in their parameters "
            f"({ia.size} vs. {ib.size} values, names {ia.names[:3]}... vs. {ib.names[:3]}...). "
            "Use the transformation (fit_pair) for networks of different architectures"
        )
    chosen = list(measures) if measures is not None else [m for m in DEFAULT_MEASURES if m != JACOBIAN or inputs is not None]
    unknown = [m for m in chosen if m not in MEASURES and m != JACOBIAN]
    if unknown:
        raise WeightSpaceError(f"unknown weight measures {unknown}; choose from {list(DEFAULT_MEASURES)}")
    va = flatten_parameters(net_a)[0].double().cpu().numpy()
    vb = flatten_parameters(net_b)[0].double().cpu().numpy()
    out = []
    for name in chosen:
        if name == JACOBIAN:
            if inputs is None:
                raise WeightSpaceError("jacobian_frobenius needs inputs=... (a batch of network inputs)")
            out.append(criterion(JACOBIAN, "a~b", d.jacobian_frobenius(net_a, net_b, inputs),
                                 f"RMS over {len(inputs)} inputs"))
        else:
            fn, direction, detail = MEASURES[name]
            out.append(criterion(name, direction, fn(va, vb, ia), detail))
    return out


def weight_result(net_a, net_b, measures=None, inputs=None, name: str = "weights",
                  thresholds: Mapping | None = None) -> EquivalenceResult:
    """:func:`weight_criteria` wrapped in an :class:`EquivalenceResult` (thresholds optional)."""
    result = EquivalenceResult(name, weight_criteria(net_a, net_b, measures, inputs), {"space": "weights"})
    return result.apply_thresholds(thresholds) if thresholds else result
