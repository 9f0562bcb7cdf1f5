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

from .errors import EquivtestError, FitConfigError
from .pairing import TestRows
from .pairs import NetworkPair


def ladder_verdict(pair: NetworkPair, inputs, *, rungs: Sequence | None = None, thresholds=None, heldout: float = 0.25,
                   seed: int = 0, null_repeats: int = 1, stitched: bool = True, neighbourhoods=None,
                   neighbourhood=None, neighbourhood_inputs: int | None = 64, stop_at_pass: bool = True, stage=None,
                   device: str | None = None):
    """The :class:`~equivtest.verdict.Verdict` of ``pair`` on ``inputs`` (of A's domain).

    ``rungs`` (default :data:`equivtest.maps.LADDER`), ``thresholds``, ``heldout``, ``seed``,
    ``null_repeats``, ``stop_at_pass`` and ``device`` (a torch device for the rigid and affine
    maps, e.g. "cuda"; checked before the capture) go to :func:`~equivtest.verdict.decide`.
    ``stitched=False`` skips the stitched network's score (activation criteria only).

    The diffusion-map rung (``DiffusionMap(k)`` in ``rungs``) also needs the rows of each
    training row's neighbourhood. They are captured through the pair's pairing, on at most
    ``neighbourhood_inputs`` training inputs (drawn at random; ``None``: all of them), so the
    cost stays bounded: a ``Positions`` pairing draws its own neighbourhood and positions
    (``neighbourhood`` replaces its neighbourhood); a ``Samples`` pairing needs
    ``neighbourhood`` (e.g. ``GaussianNeighbourhood(64, 0.05)``). ``neighbourhoods``: rows
    captured by the caller instead, ``(NA, NB)`` or a :class:`~equivtest.verdict.NeighbourhoodRows`.
    """
    from .maps import LADDER, make_rung
    from .maps._xp import check_device
    from .verdict import decide, split_by_input

    if not isinstance(pair, NetworkPair):
        raise TypeError(f"verdict needs a NetworkPair, got {type(pair).__name__}")
    check_device(device)  # before any capture or fit
    templates = [make_rung(r, device) for r in (LADDER if rungs is None else rungs)]
    pairing = pair.pairing
    if stage:
        stage("capturing both networks' rows")
    test = pairing.test_rows(pair, inputs)
    a, b, groups = pairing.paired(test)
    if not len(a):
        raise EquivtestError("the inputs gave no paired rows")
    train, held = split_by_input(groups, heldout=heldout, seed=seed)
    if neighbourhoods is None and any(getattr(t, "needs_neighbourhoods", False) for t in templates):
        chosen = _neighbourhood_inputs(np.unique(groups[train]), neighbourhood_inputs, seed)
        neighbourhoods = neighbourhood_rows(pair, test.inputs, chosen, neighbourhood, seed=seed, stage=stage)
    callback = _stitch_callback(pair, test, groups, held) if stitched else None
    if stage:
        stage(f"fitting the ladder on {len(a):,} rows of {int(groups.max()) + 1:,} inputs")
    return decide(a, b, groups, rungs=templates, thresholds=thresholds, heldout=heldout, seed=seed,
                  null_repeats=null_repeats, stitch=callback, neighbourhoods=neighbourhoods, stop_at_pass=stop_at_pass,
                  device=device)


def _neighbourhood_inputs(train_inputs: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    if limit is None:
        return train_inputs
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 2:
        raise FitConfigError(f"neighbourhood_inputs must be a whole number of at least 2 or None, got {limit!r}")
    if len(train_inputs) <= limit:
        return train_inputs
    return np.sort(np.random.default_rng(seed + 2).choice(train_inputs, size=int(limit), replace=False))


def neighbourhood_rows(pair: NetworkPair, inputs, chosen, neighbourhood=None, *, seed: int = 0, stage=None):
    """:class:`~equivtest.verdict.NeighbourhoodRows` of the inputs ``inputs[i]`` for ``i`` in
    ``chosen``, captured through the pair's pairing (``groups``: the indices ``chosen``)."""
    from dataclasses import replace

    from .config import FitConfig
    from .sampling import SampleSet
    from .verdict import NeighbourhoodRows

    pairing, chosen = pair.pairing, np.asarray(chosen, dtype=np.int64)
    if hasattr(pairing, "neighbourhood"):  # it draws its own neighbourhoods (Positions)
        pairing = pairing if neighbourhood is None else replace(pairing, neighbourhood=neighbourhood)
        data = [inputs[int(i)] for i in chosen]
    else:
        if neighbourhood is None:
            raise FitConfigError(
                "the diffusion-map rung needs the rows of each training input's neighbourhood, and this pair's "
                f"{type(pairing).__name__} pairing draws none: pass neighbourhood=GaussianNeighbourhood(size, delta) "
                "to ladder_verdict (or neighbourhoods=NeighbourhoodRows(...) captured yourself), or leave the "
                "diffusion rung off the ladder")
        x = np.asarray(inputs)[chosen]
        data = SampleSet(x, neighbourhood.around(x, np.random.default_rng(seed)))
    if stage:
        stage(f"capturing the neighbourhoods of {len(chosen):,} training inputs for the diffusion-map rung")
    captured = pairing.capture(pair, data, FitConfig(), stage)
    (ra, na), (rb, nb) = captured.activations["a"], captured.activations["b"]
    return NeighbourhoodRows(ra, rb, na, nb, chosen[np.asarray(captured.groups)])


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
               "(classification) or output R^2 (regression) on the held-out inputs. " + _diagnostics_note(verdict)),
    )
    for r in verdict.rows:
        table.add_row(r.direction, r.rung, r.heldout_rel_error, r.null_rel_error, r.null_ratio, r.control_rel_error,
                      r.stitched, "yes" if r.passed else ("undecidable" if not r.decidable else "no"), r.reason)
    return table


def _diagnostics_note(verdict) -> str:
    """What the data allows (rows against widths, intrinsic dimension against eigenvectors, the
    ridge system's condition) and the hints that name the fix, for the table's notes."""
    d = verdict.diagnostics
    parts = [f"{d.rows_train:,} training rows of {d.inputs_train:,} inputs, {d.rows_heldout:,} held-out rows of "
             f"{d.inputs_heldout:,}; widths A {d.width_a:,}, B {d.width_b:,}"]
    if d.intrinsic_dim_a is not None:
        parts.append(f"intrinsic dimension (local PCA) A {d.intrinsic_dim_a}, B {d.intrinsic_dim_b}"
                     + (f" against {d.n_eigenvectors} eigenvectors" if d.n_eigenvectors is not None else ""))
    if d.neighbourhood_rows is not None:
        parts.append(f"{d.neighbourhood_train_rows:,} rows with neighbourhoods of {d.neighbourhood_rows}")
    if d.ridge_condition:
        parts.append("ridge condition " + ", ".join(f"{k} {v:.3g}" for k, v in d.ridge_condition.items()))
    hints = "".join(f" Fix: {h}." for h in d.hints)
    return "Diagnostics: " + "; ".join(parts) + "." + hints
