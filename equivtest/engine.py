"""One-way flow of a fit: data -> paired rows -> transformation -> evaluation.

``fit`` turns the fit's data into paired rows of both networks through the pair's
pairing (whole samples, sequence slices, or positions of variable-length text and
audio) and fits the transformation; ``fit_slice_lengths`` does the same for several
slice lengths of sequence layers from one capture; ``FittedPair.evaluate`` scores the
transformation on held-out inputs and returns an immutable evaluation. One path for
every network kind: the pytest plugin, the CLI and the suites all drive these functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ._memory import RowStore, StagePeaks, measured, within_budget
from .config import FitConfig
from .criteria import EquivalenceResult, EvaluationArrays, criterion
from .errors import ActivationError, EquivtestError
from .pairing import Captured, TestRows
from .pairs import NetworkPair
from .sampling import Sampler, SampleSet
from .stitch import StitchedNetwork
from .transform import Transformation
from .whitney import estimate_intrinsic_dimension, whitney_check

DIRECTIONS = (("a", "b"), ("b", "a"))  # (source, target)
Stage = Callable[[str], None]


@dataclass(frozen=True)
class FittedPair:
    """A pair with its fitted transformation and the rows the fit saw. Nothing changes it
    after the fit: ``evaluate`` returns its results as values.

    ``data`` is what the fit was given (a sampler, or a list of texts or waveforms);
    ``activations[side] = (rows, neighbourhood rows)`` in the networks' precision (float32
    for float32 networks; neighbourhood rows beyond ``config.memory_budget`` are
    :class:`~equivtest._memory.DiskRows` on disk); ``groups[r]`` the input row r came
    from; ``samples`` the drawn :class:`SampleSet` of fixed-shape inputs (else ``None``);
    ``memory`` the peak memory of each stage of the fit and where the rows were held.
    """

    pair: NetworkPair
    data: Any
    config: FitConfig
    transformation: Transformation
    activations: dict
    groups: np.ndarray
    samples: SampleSet | None = None
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    memory: dict = field(default_factory=dict)

    @property
    def sampler(self):
        """The fit's data (a :class:`Sampler` for fixed-shape pairs); kept for older callers."""
        return self.data

    @property
    def sample_rows(self) -> list[int]:
        """Rows each input gave (sequence pairs: positions kept per input)."""
        return np.bincount(self.groups).tolist()

    def describe_data(self) -> dict:
        describe = getattr(self.data, "describe", None)
        data = describe() if callable(describe) else {"kind": type(self.data).__name__, "n_inputs": self.info.get("n_inputs")}
        return {**data, "pairing": self.pair.pairing.describe()}

    def stitched(self, to: str, **kwargs) -> StitchedNetwork:
        """The stitched network whose *target* is ``to`` ("a" or "b"), for fixed-shape pairs."""
        p = self.pair
        if p.kind != "torch":
            raise EquivtestError("StitchedNetwork serves fixed-shape torch pairs; for transformers pairs use "
                                 "evaluate(), whose arrays hold the stitched answers")
        target = self.transformation.side(to)
        source = "a" if target == "b" else "b"
        domain_map = p.domain_map if target == "b" else None
        if target == "a" and p.domain_map is not None:
            raise EquivtestError("stitching into A needs the inverse of the domain map; fit the pair the other way round")
        return StitchedNetwork(
            p.network(source), p.network(target), p.layer(source), p.layer(target),
            self.transformation, target, domain_map=domain_map, batch_size=self.config.batch_size, **kwargs,
        )

    def directions(self) -> list[tuple[str, str]]:
        """(source, target) pairs the pairing can stitch: both ways, or A into B only."""
        return self.pair.pairing.directions(self.pair)

    def evaluate(
        self, test_inputs, *, thresholds: dict | None = None, stage: Stage | None = None, null_shuffles: int = 0,
        target_input: str | None = None,
    ) -> EquivalenceResult:
        """Every criterion on ``test_inputs`` (inputs of A's domain), in each direction the
        pairing allows; returns an immutable result whose ``arrays`` hold what they were
        computed on.

        ``null_shuffles`` > 0 adds null calibration: the transformation is refitted on
        that many random re-pairings of the rows, and ``null_activation_mse`` and
        ``null_ratio`` say how far the real fit beats chance pairing. ``target_input``
        (transformers pairs): feed the stitched target its ``"real"`` input or a
        ``"dummy"`` of the same length, instead of what the pairing says.
        """
        null_shuffles = _count(null_shuffles, "null_shuffles")
        t0 = time.perf_counter()
        peaks = StagePeaks()
        stage = measured(stage, peaks)
        p, pairing = self.pair, self.pair.pairing
        if target_input is not None:
            if not hasattr(pairing, "target_input"):
                raise EquivtestError(f"target_input applies to transformers pairs; this pair's pairing is {pairing!r}")
            pairing = replace(pairing, target_input=target_input)
            p = replace(p, pairing=pairing)
        if stage:
            stage("capturing the test inputs")
        test = pairing.test_rows(p, test_inputs, self.info)
        found, predictions, stitched = [], {}, {}
        rng = np.random.default_rng(self.info.get("seed", 0))
        n = len(self.groups)
        nulls = [self.transformation.repaired(rng.permutation(n)) for _ in range(null_shuffles)]
        residual = self.transformation.diffusion_residual()
        for source, target in pairing.directions(p):
            direction = f"{source}->{target}"
            if stage:
                stage(f"criteria {direction}")
            predicted = predictions[direction] = self.transformation.predict(test.rows[source], to=target)
            mse = pairing.activation_mse(test, predicted, source, target)
            found.append(criterion("activation_mse", direction, mse))
            if null_shuffles > 0:
                null = float(np.median([pairing.activation_mse(test, t.predict(test.rows[source], to=target), source, target)
                                        for t in nulls]))
                found.append(criterion("null_activation_mse", direction, null, f"{null_shuffles} shuffle(s)"))
                found.append(criterion("null_ratio", direction, mse / null if null > 0 else np.inf))
            found.append(criterion("diffusion_residual", direction, residual[direction]))
            stitched[direction] = pairing.stitch(p, test, predicted, target)
            found.extend(output_criteria(p, test, stitched[direction], target, direction))
        found.extend(self.transformation.geometry_criteria())
        found.extend(self.whitney(test))
        if stage:
            stage("reference measures")
        found.extend(self.reference_measures(test, p))
        numeric = test.inputs if isinstance(test.inputs, np.ndarray) else None
        arrays = EvaluationArrays(numeric, test.rows, test.groups, test.outputs, predictions, stitched)
        peaks.finish()
        info = {"n_test": len(test_inputs), "evaluate_s": round(time.perf_counter() - t0, 6), "memory": peaks.record(),
                **({"target_input": pairing.target_input} if hasattr(pairing, "target_input") else {})}
        result = EquivalenceResult(p.name, found, info, arrays)
        return result.with_thresholds(thresholds) if thresholds else result

    def reference_measures(self, test: TestRows, pair: NetworkPair | None = None) -> list:
        """CKA, Procrustes distance and a linear stitch on the same rows, so a user sees
        whether the transformation beats what they already know."""
        from .measures import LinearCKA, LinearStitch, ProcrustesDistance

        p = pair or self.pair
        pairing = p.pairing
        sa, sb = self.activations["a"][0], self.activations["b"][0]
        found = []
        try:
            found += [
                criterion("cka", "a<->b", LinearCKA().fit(sa, sb).score_),
                criterion("cka_debiased", "a<->b", LinearCKA(debiased=True).fit(sa, sb).score_),
                criterion("procrustes_distance", "a<->b", ProcrustesDistance().fit(sa, sb).score_),
            ]
        except EquivtestError as exc:  # e.g. a constant layer: the measure is undefined, not the run
            found.append(criterion("cka", "a<->b", float("nan"), f"undefined: {exc}"))
        for source, target in pairing.directions(p):
            direction = f"{source}->{target}"
            linear = LinearStitch().fit(self.activations[source][0], self.activations[target][0])
            predicted = linear.predict(test.rows[source])
            found.append(criterion("linear_activation_mse", direction, pairing.activation_mse(test, predicted, source, target)))
            out = pairing.stitch(p, test, predicted, target)
            found.extend(output_criteria(p, test, out, target, direction, prefix="linear_"))
        return found

    def whitney(self, test: TestRows | None = None) -> list:
        """Whitney's 2d+1: no layer up to the chosen one narrower than twice the input
        manifold's dimension plus one. d is the pair's ``intrinsic_dim``, else estimated
        from the samples (fixed-shape inputs) or from A's rows (text and audio)."""
        p = self.pair
        if p.intrinsic_dim is not None:
            d, source = int(p.intrinsic_dim), "given"
        elif self.samples is not None:
            d, source = estimate_intrinsic_dimension(self.samples.samples), "estimated from the samples"
        else:
            d, source = estimate_intrinsic_dimension(self.activations["a"][0]), "estimated from A's rows"
        out = []
        for side in ("a", "b"):
            example = self._example(side)
            widths = p.side(side).widths(example)
            check = whitney_check(widths, self.activations[side][0].shape[1], d)
            detail = f"d={d} ({source}), 2d+1={check.required}, narrowest {check.narrowest[0]}={check.narrowest[1]}"
            out.append(criterion("whitney", side, check.value, detail).with_threshold(check.required))
        return out

    def _example(self, side: str):
        if self.samples is not None:
            return self.pair.inputs_for(side, self.samples.samples[:2])
        first = self.data[int(self.groups[0])] if len(self.groups) else self.data[0]
        return self.pair.inputs_for(side, first)


def output_criteria(pair: NetworkPair, test: TestRows, stitched, target: str, direction: str, prefix: str = "") -> list:
    """The task's criterion of the stitched network against the target's own output.

    Regression: output MSE (NaN when an output is not finite). Classification and
    transcription: the share of inputs where both answer the same; a NaN or inf output
    counts as disagreement, and the criterion's detail says how many there were.
    """
    net, own = pair.side(target), test.outputs[target]
    if pair.task == "regression":
        own_a, new = np.asarray(own, dtype=np.float64), np.asarray(stitched, dtype=np.float64)
        bad = int((~np.isfinite(new.reshape(len(new), -1)).all(axis=1)).sum())
        detail = f"{bad} of {len(new)} stitched outputs not finite" if bad else ""
        return [criterion(f"{prefix}output_mse", direction, np.mean((new - own_a) ** 2), detail)]
    mine, theirs = net.answers(stitched, pair.task), net.answers(own, pair.task)
    share, bad = answer_agreement(mine, theirs)
    detail = f"{bad} output(s) not finite, counted as disagreement" if bad else ""
    found = [criterion(f"{prefix}agreement", direction, share, detail)]
    if pair.task == "transcription" and not prefix:
        from .adapters.hf.words import word_agreement

        found.append(criterion("word_agreement", direction, word_agreement(list(theirs), list(mine))))
    return found


def answer_agreement(mine, theirs) -> tuple[float, int]:
    """The share of inputs on which two networks answer the same, and how many answers were
    none (class -1: a NaN or inf output), which agree with nothing, not even each other."""
    def none(x) -> bool:
        return isinstance(x, (int, np.integer)) and int(x) < 0

    mine, theirs = list(mine), list(theirs)
    same = [not none(x) and not none(y) and x == y for x, y in zip(mine, theirs)]
    return (float(np.mean(same)) if same else float("nan")), sum(1 for x in mine + theirs if none(x))


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 0:
        raise EquivtestError(f"{name} must be a non-negative whole number, got {value!r}")
    return int(value)


def fit(pair: NetworkPair, data, config: FitConfig | None = None, *, stage: Stage | None = None) -> FittedPair:
    """Paired rows of both networks (the pair's pairing decides how) -> transformation.

    ``data``: a :class:`Sampler` for fixed-shape torch pairs; a list of texts or
    waveforms for transformers pairs.
    """
    if not isinstance(pair, NetworkPair):
        raise TypeError(f"fit needs a NetworkPair, got {type(pair).__name__}")
    config = config or FitConfig()
    peaks = StagePeaks()
    stage = measured(stage, peaks)
    peaks.stage("capture")
    captured = pair.pairing.capture(pair, data, config, stage)
    rows = _drawn_rows(len(captured.groups), config.max_rows, getattr(data, "seed", 0), stage)
    activations, store = within_budget(captured.activations, rows, config.row_store())
    groups = captured.groups if rows is None else captured.groups[rows]
    captured = replace(captured, activations={})  # rows moved to disk are not also held here
    return _fit(pair, data, config, captured, activations, groups, dict(captured.timings), stage, peaks, store)


def fit_pair(pair: NetworkPair, sampler: Sampler, config: FitConfig | None = None, *, stage: Stage | None = None) -> FittedPair:
    """:func:`fit` of a fixed-shape pair on a sampler (the name this function had first)."""
    return fit(pair, sampler, config, stage=stage)


def fit_slice_lengths(
    pair: NetworkPair, sampler: Sampler, slice_lengths: Sequence[int], config: FitConfig | None = None,
    *, stage: Stage | None = None,
) -> Iterator[FittedPair]:
    """``fit_pair`` at each slice length in turn, with one forward pass for all of them.

    ``pair``'s layers are sequence layers (a ``layout``); their ``slice_length`` is set
    to each p in turn, and fit p's pair is named ``f"{pair.name}-p{p}"``. Both networks
    are captured once at slice length 1 and every fit's rows are cut from that capture
    (``LayerSpec.cut``), so each fit sees the samples, rows and values ``fit_pair`` would
    give it, while the networks run once instead of once per p (the forward passes
    dominate a sliced fit's time). A generator: each fit can be scored and let go before
    the next one is cut. The capture is held until the last fit is cut, so give the
    largest fit (most rows x features) last to keep the peak memory to what ``fit_pair``
    needs for it, and drop each fit (``del``) before asking for the next: a ``for``
    loop's variable, or ``zip``'s reused tuple, holds the previous one until the next
    one is made.
    """
    config = config or FitConfig()
    outer, peaks = stage, StagePeaks()
    stage = measured(outer, peaks)
    for side in ("a", "b"):
        if pair.layer(side).layout is None:
            raise EquivtestError(
                f"fit_slice_lengths needs sequence layers; layer {pair.layer(side).path!r} has no layout "
                "(give LayerSpec(..., layout='bsf') or fit it with fit_pair)"
            )
    positions = _with_slice_length(pair, 1)
    peaks.stage("capture")
    # the capture at slice length 1 is held in memory (every fit is cut from it); each
    # fit's own rows then go to disk where they exceed the memory budget
    first = positions.pairing.capture(positions, sampler, replace(config, memory_budget=None), stage)
    captured, samples, timings = first.activations, first.samples, first.timings
    n = len(samples.samples)
    lengths = {side: len(captured[side][0]) // n for side in ("a", "b")}
    if lengths["a"] != lengths["b"]:
        raise ActivationError(
            f"the two layers' sequences differ in length ({pair.names[0]}: {lengths['a']}, {pair.names[1]}: "
            f"{lengths['b']} positions); slices pair position for position, so the lengths must match"
        )
    slice_lengths = list(slice_lengths)
    for index, p in enumerate(slice_lengths):
        sliced = _with_slice_length(pair, p)
        t = time.perf_counter()
        n_rows = n * sliced.layer("a").stride(lengths["a"])
        rows = _drawn_rows(n_rows, config.max_rows, sampler.seed, stage)
        activations = {side: tuple(sliced.layer(side).cut(part, n, rows) for part in captured[side])
                       for side in ("a", "b")}
        if index == len(slice_lengths) - 1:
            del captured  # the last fit need not share memory with the whole capture
        activations, store = within_budget(activations, None, config.row_store())
        per = n_rows // n
        groups = np.repeat(np.arange(n), per) if rows is None else rows // per
        info = {**first.info, "n_rows": int(len(groups))}
        yield _fit(sliced, sampler, config, Captured({}, groups, samples, info), activations, groups,
                   {**timings, "cut_s": time.perf_counter() - t}, stage, peaks, store)
        peaks = StagePeaks()  # the next fit's stages are its own
        stage = measured(outer, peaks)
        del activations  # held by the fit just handed out; the caller decides when it goes


def _with_slice_length(pair: NetworkPair, p: int) -> NetworkPair:
    return replace(pair, name=f"{pair.name}-p{p}", metadata={**pair.metadata, "slice_length": p},
                   layer_a=replace(pair.layer_a, slice_length=p), layer_b=replace(pair.layer_b, slice_length=p))


def _fit(pair, data, config, captured: Captured, activations, groups, timings, stage, peaks: StagePeaks,
         store: RowStore) -> FittedPair:
    stage(f"fitting the transformation on {len(groups):,} rows")
    t = time.perf_counter()
    transformation = config.transformation(pair.names).fit(*activations["a"], *activations["b"], stage=stage,
                                                           allocate_factors=store.factors)
    timings["fit_s"] = time.perf_counter() - t
    peaks.finish()
    info = {**captured.info, "seed": int(getattr(data, "seed", getattr(pair.pairing, "seed", 0)) or 0)}
    memory = {**peaks.record(), **store.describe()}
    return FittedPair(pair, data, config, transformation, activations, np.asarray(groups), captured.samples, info,
                      timings, memory)


def _drawn_rows(n: int, max_rows: int | None, seed: int, stage: Stage | None = None) -> np.ndarray | None:
    """Which ``max_rows`` of ``n`` rows a fit uses, drawn at random (``None``: all of them).
    The same rows of both networks are taken, so the pairing stays."""
    if max_rows is None or n <= int(max_rows):
        return None
    rows = np.sort(np.random.default_rng(seed).choice(n, int(max_rows), replace=False))
    if stage:
        stage(f"fitting on {len(rows)} of {n} rows, drawn at random")
    return rows
