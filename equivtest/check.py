"""A verdict on a pair: the ladder of maps on paired rows of many inputs, with the stitched
network scored through the pair's own pairing.

``ladder_verdict(pair, inputs)`` captures both networks' rows of ``inputs`` (every row of every
input: positions of a sentence, slices of a sequence, whole samples), pairs them through
the pair's pairing, and hands them to :func:`equivtest.verdict.decide`, which splits them
by input, fits each rung of the ladder rigid first in both directions, and checks it on
the held-out inputs against a null (re-paired rows) and a positive control (the source
against itself). The stitched network (A up to its layer, the rung's map, B after it) is
scored on the held-out inputs through the same code that ``evaluate`` stitches with:
agreement of the answers for classification and transcription, the output's R^2 for
regression.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import EquivtestError
from .pairing import TestRows
from .pairs import NetworkPair


def ladder_verdict(pair: NetworkPair, inputs, *, rungs: Sequence | None = None, thresholds=None, heldout: float = 0.25,
            seed: int = 0, null_repeats: int = 1, stitched: bool = True, neighbourhoods=None, stage=None):
    """The :class:`~equivtest.verdict.Verdict` of ``pair`` on ``inputs`` (of A's domain).

    ``rungs`` (default :data:`equivtest.maps.LADDER`), ``thresholds``, ``heldout``, ``seed``
    and ``null_repeats`` go to :func:`~equivtest.verdict.decide`. ``stitched=False`` skips the
    stitched network's score (activation criteria only). ``neighbourhoods=(NA, NB)``
    (neighbourhood rows of every row) let the diffusion-map rung run.
    """
    from .maps import LADDER
    from .verdict import decide, split_by_input

    if not isinstance(pair, NetworkPair):
        raise TypeError(f"verdict needs a NetworkPair, got {type(pair).__name__}")
    pairing = pair.pairing
    if stage:
        stage("capturing both networks' rows")
    test = pairing.test_rows(pair, inputs)
    a, b, groups = pairing.paired(test)
    if not len(a):
        raise EquivtestError("the inputs gave no paired rows")
    callback = None
    if stitched:
        held = split_by_input(groups, heldout=heldout, seed=seed)[1]
        callback = _stitch_callback(pair, test, groups, held)
    if stage:
        stage(f"fitting the ladder on {len(a):,} rows of {int(groups.max()) + 1:,} inputs")
    return decide(a, b, groups, rungs=LADDER if rungs is None else rungs, thresholds=thresholds, heldout=heldout,
                  seed=seed, null_repeats=null_repeats, stitch=callback, neighbourhoods=neighbourhoods)


def _stitch_callback(pair: NetworkPair, test: TestRows, groups: np.ndarray, held: np.ndarray):
    """``stitch(direction, rung, predicted)``: the held-out inputs run through the stitched network."""
    held_inputs = np.unique(groups[held])
    sub = _subset(pair.pairing, test, held_inputs)
    sub_groups = np.searchsorted(held_inputs, groups[held])

    def stitch(direction: str, rung: str, predicted: np.ndarray) -> float:
        source, target = direction.split("->")
        if (source, target) not in pair.pairing.directions(pair):
            return float("nan")  # the pairing cannot stitch this way (a domain map has no inverse)
        rows = dict(sub.rows)
        rows[source] = np.zeros((len(predicted), rows[source].shape[1]))
        aligned = TestRows(sub.inputs, rows, {**sub.groups, source: sub_groups}, sub.outputs, sub.extra)
        out = pair.pairing.stitch(pair, aligned, predicted, target)
        return _score(pair, out, sub.outputs[target], target)

    return stitch


def _subset(pairing, test: TestRows, inputs: np.ndarray) -> TestRows:
    """``test`` for the given inputs only (their rows, outputs and what the pairing keeps)."""
    keep_rows = {s: np.isin(test.groups[s], inputs) for s in test.rows}
    renumber = {s: np.searchsorted(inputs, test.groups[s][keep_rows[s]]) for s in test.rows}
    pick = (lambda seq: seq[inputs]) if isinstance(test.inputs, np.ndarray) else (lambda seq: [seq[i] for i in inputs])
    outputs = {s: (np.asarray(v)[inputs] if isinstance(v, np.ndarray) else [v[i] for i in inputs])
               for s, v in test.outputs.items()}
    extra = {k: ({s: [v[i] for i in inputs] for s, v in e.items()} if isinstance(e, dict) else e)
             for k, e in test.extra.items()}
    return TestRows(pick(test.inputs), {s: test.rows[s][keep_rows[s]] for s in test.rows}, renumber, outputs, extra)


def _score(pair: NetworkPair, stitched, own, target: str) -> float:
    """Agreement of the answers (classification, transcription) or the output's R^2 (regression)."""
    net = pair.side(target)
    if pair.task == "regression":
        new, ref = np.asarray(stitched, dtype=np.float64), np.asarray(own, dtype=np.float64)
        var = float(np.mean((ref - ref.mean(axis=0)) ** 2))
        return float(1.0 - np.mean((new - ref) ** 2) / var) if var > 0 else float("nan")
    from .engine import answer_agreement

    return answer_agreement(net.answers(stitched, pair.task), net.answers(own, pair.task))[0]


def verdict_table(verdict, title: str | None = None):
    """The verdict as a :class:`~equivtest.report.tables.ResultTable`: one row per rung tried in
    each direction, with its held-out error, null, positive control and stitched score, so the
    terminal, the JSON record and the HTML page show the ladder the same way."""
    from .report.tables import ResultTable

    table = ResultTable(
        title or f"Ladder of maps: {verdict.text}",
        ["direction", "rung", "held-out rel. error", "null rel. error", "null ratio", "control rel. error",
         "stitched", "passed", "reason"],
        notes=("rel. error: held-out MSE over the target's variance (1 - R^2); null: the same rung on re-paired rows; "
               "control: the source against itself through the same rung; stitched: the stitched network's agreement "
               "(classification) or output R^2 (regression) on the held-out inputs"),
    )
    for r in verdict.rows:
        table.add_row(r.direction, r.rung, r.heldout_rel_error, r.null_rel_error, r.null_ratio, r.control_rel_error,
                      r.stitched, "yes" if r.passed else ("undecidable" if not r.decidable else "no"), r.reason)
    return table
