"""The ladder of maps beside the thesis's method, and the figures each suite guards as baselines.

Every suite runs :func:`equivtest.runner.ladder_beside` on its pair and its own held-out
inputs after the thesis's transformation (which it leaves as it was), so the terminal, the
run record and the HTML page show which rung carries the layer. Each profile names its
rungs under ``"ladder"``: ``ci`` stops at the affine rung (:data:`CI_RUNGS`; the nonlinear
rung, kernel ridge with cross-validation, takes 8-70 s per slice length or suite on two
cores, where the rigid and affine rungs take seconds), ``full`` runs the whole default
ladder (:data:`FULL_RUNGS`), and a profile without the key runs none (the speech suites'
``smoke``: 12 test utterances, fewer than the 20 the ladder needs to hold out 5).

:func:`figures` gathers what a suite's pytest file guards with a figures-only baseline
(``equivtest_baseline(None, figures(...), tolerances=TOLERANCES)``): its agreement figures
and, per direction, the ladder's held-out relative error and stitched score.
"""

from __future__ import annotations

import time
from typing import Iterable

from equivtest.baseline import Tolerance
from equivtest.criteria import Criterion, EquivalenceResult
from equivtest.maps import LADDER
from equivtest.runner import ladder_beside

CI_RUNGS = ("identity", "permutation", "orthogonal", "diagonal", "affine")
FULL_RUNGS = LADDER
CI_NOTE = ("Profile ci: rungs up to affine; the nonlinear rung (8-70 s per ladder on two cores) runs in the full "
           "profile. The stitched score is measured on the held-out quarter of the suite's test inputs.")
FULL_NOTE = "The stitched score is measured on the held-out quarter of the suite's test inputs."

# How far a guarded figure may move the bad way before the suite fails (an improvement never
# fails). Shares of test inputs (agreement, accuracy drop, the stitched score): 0.01, a few
# answers. Relative errors: 50% (and 1e-9 absolute, for suite 1d's 1e-10 figures), like the
# 1d baseline's slack for retraining. Networks that another CPU trained can move further
# (vibration: up to 0.037, docs/suites/vibration.md), so that suite keeps a baseline per set
# of networks.
TOLERANCES = {
    "default": Tolerance(worse_by=0.0, atol=0.01),
    "ladder_rel_error": Tolerance(worse_by=0.5, atol=1e-9),
}


def beside(pair, inputs, result: EquivalenceResult, rungs, timings: dict, *, label: str | None = None,
           stage=None) -> tuple[EquivalenceResult, list, list]:
    """The ladder on ``rungs`` (a profile's ``"ladder"``; None: none) after the thesis's method:
    ``(result, tables, verdicts)``, the result with the verdict in its info; ``timings`` gets
    ``ladder_s`` (or ``ladder_LABEL_s``)."""
    if rungs is None:
        return result, [], []
    note = FULL_NOTE if "nonlinear" in rungs else CI_NOTE
    t = time.perf_counter()
    result, table, verdict = ladder_beside(pair, inputs, result, rungs=rungs, label=label, note=note, stage=stage)
    timings[f"ladder_{label.replace('=', '')}_s" if label else "ladder_s"] = time.perf_counter() - t
    return result, [table], [verdict]


def deciding_row(verdict, direction: str):
    """The rung that decided ``direction``: the one that passed, else the last one fitted."""
    rows = [r for r in verdict.rows if r.direction == direction and r.heldout_rel_error is not None]
    if not rows:
        raise ValueError(f"the ladder fitted no rung in direction {direction!r}")
    return next((r for r in rows if r.passed), rows[-1])


def ladder_criteria(verdict) -> list[Criterion]:
    """Per direction, the deciding rung's held-out relative error and stitched score."""
    out = []
    for direction in ("a->b", "b->a"):
        row = deciding_row(verdict, direction)
        stitched = float("nan") if row.stitched is None else float(row.stitched)
        out += [Criterion("ladder_rel_error", direction, float(row.heldout_rel_error), None, False, row.rung),
                Criterion("ladder_stitched", direction, stitched, None, True, row.rung)]
    return out


def figures(pair: str, result: EquivalenceResult, names: Iterable[str], verdict=None) -> EquivalenceResult:
    """A figures-only result: ``result``'s criteria called ``names`` (every direction), and
    the ladder's figures when a ``verdict`` is given."""
    names = set(names)
    chosen = [c for c in result.criteria if c.name in names]
    missing = names - {c.name for c in chosen}
    if missing:
        raise KeyError(f"result {result.pair!r} has no criteria {sorted(missing)}")
    return EquivalenceResult(pair, chosen + (ladder_criteria(verdict) if verdict is not None else []))


def assert_decided_not_equivalent(outcome, *, min_heldout_rel_error: float = 0.0) -> None:
    """A suite's real pair is decided "not equivalent": the record says so, and in each
    direction the deciding rung is decidable because each network through the same map to
    itself passes its positive control (relative error below 1e-3), while the pair's own
    held-out relative error stays above ``min_heldout_rel_error``."""
    (verdict,) = outcome.verdicts
    assert verdict.kind == "not_equivalent", verdict.text
    assert outcome.results[0].info["verdict_kind"] == verdict.kind
    for direction in ("a->b", "b->a"):
        row = deciding_row(verdict, direction)
        assert row.decidable and row.control_rel_error < 1e-3 and row.heldout_rel_error > min_heldout_rel_error, row
