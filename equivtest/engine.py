"""One-way flow of a fit: samples -> activations -> transformation -> criteria.

``fit_pair`` draws the samples, captures both networks' activations and fits the
transformation; ``fit_slice_lengths`` does the same for several slice lengths of
sequence layers from one capture; ``FittedPair.evaluate`` runs the criteria on test
inputs. The pytest plugin, the CLI and the suites all drive these functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator, Sequence

import numpy as np

from .capture import capture, capture_neighbourhoods, forward_batched, layer_widths
from .config import FitConfig
from .criteria import EquivalenceResult, criterion
from .errors import ActivationError, EquivtestError
from .pairs import NetworkPair
from .sampling import Sampler, SampleSet
from .stitch import StitchedNetwork
from .transform import Transformation
from .whitney import estimate_intrinsic_dimension, whitney_check

DIRECTIONS = (("a", "b"), ("b", "a"))  # (source, target)
Stage = Callable[[str], None]


@dataclass
class FittedPair:
    """A pair with its fitted transformation and everything the fit saw."""

    pair: NetworkPair
    sampler: Sampler
    config: FitConfig
    samples: SampleSet
    transformation: Transformation
    activations: dict  # side -> (sample activations, neighbourhood activations)
    timings: dict = field(default_factory=dict)
    listeners: list = field(default_factory=list)
    null_shuffles: int = 0  # default for evaluate(); the plugin sets it from --equivtest-null

    def stitched(self, to: str, **kwargs) -> StitchedNetwork:
        """The stitched network whose *target* is ``to`` ("a" or "b")."""
        target = self.transformation.side(to)
        source = "a" if target == "b" else "b"
        p = self.pair
        domain_map = p.domain_map if target == "b" else None
        if target == "a" and p.domain_map is not None:
            raise NotImplementedError("stitching into A needs the inverse of the domain map; fit the pair the other way round")
        return StitchedNetwork(
            p.network(source), p.network(target), p.layer(source), p.layer(target),
            self.transformation, target, domain_map=domain_map, batch_size=self.config.batch_size, **kwargs,
        )

    def evaluate(
        self, test_inputs, *, thresholds: dict | None = None, stage: Stage | None = None, null_shuffles: int | None = None
    ) -> EquivalenceResult:
        """All criteria on ``test_inputs`` (inputs of A's domain), in both directions.

        ``null_shuffles`` > 0 adds null calibration: the transformation is refitted on
        that many random re-pairings of the samples, and ``null_activation_mse`` and
        ``null_ratio`` say how far the real fit beats chance pairing.
        """
        null_shuffles = self.null_shuffles if null_shuffles is None else int(null_shuffles)
        t0 = time.perf_counter()
        p, cfg = self.pair, self.config
        test_inputs = np.asarray(test_inputs)
        acts, outputs = {}, {}
        for side in ("a", "b"):
            net, x = p.network(side), p.inputs_for(side, test_inputs)
            acts[side] = capture(net, x, p.layer(side), batch_size=cfg.batch_size)
            outputs[side] = forward_batched(net, x, cfg.batch_size)
        found, predictions, stitched = [], {}, {}
        rng = np.random.default_rng(self.sampler.seed)
        n = len(self.activations["b"][0])  # rows: samples, or samples x slices for sequence layers
        nulls = [self.transformation.repaired(rng.permutation(n)) for _ in range(null_shuffles)]
        residual = self.transformation.diffusion_residual()
        for source, target in DIRECTIONS:
            direction = f"{source}->{target}"
            if stage:
                stage(f"criteria {direction}")
            predicted = predictions[direction] = self.transformation.predict(acts[source], to=target)
            mse = np.mean((predicted - acts[target]) ** 2)
            found.append(criterion("activation_mse", direction, mse))
            if null_shuffles > 0:
                null = np.median([np.mean((t.predict(acts[source], to=target) - acts[target]) ** 2) for t in nulls])
                found.append(criterion("null_activation_mse", direction, null, f"{null_shuffles} shuffle(s)"))
                found.append(criterion("null_ratio", direction, mse / null if null > 0 else np.inf))
            found.append(criterion("diffusion_residual", direction, residual[direction]))
            if target == "a" and p.domain_map is not None:
                continue
            # the stitched network's source half is what was just captured: reuse it
            stitched_out = stitched[direction] = self.stitched(target)(test_inputs, source_activations=acts[source])
            if p.task == "classification":
                agree = np.mean(stitched_out.argmax(axis=1) == outputs[target].argmax(axis=1))
                found.append(criterion("agreement", direction, agree))
            else:
                found.append(criterion("output_mse", direction, np.mean((stitched_out - outputs[target]) ** 2)))
        found.extend(self.transformation.geometry_criteria())
        found.extend(self.whitney())
        if stage:
            stage("reference measures")
        found.extend(self.reference_measures(test_inputs, acts, outputs))
        # kept for reports and baselines: what the criteria were computed on
        self.test_inputs, self.test_activations, self.test_outputs = test_inputs, acts, outputs
        self.test_predictions, self.test_stitched = predictions, stitched
        result = EquivalenceResult(p.name, found, {"n_test": int(len(test_inputs))})
        if thresholds:
            result = result.with_thresholds(thresholds)
        self.timings["evaluate_s"] = time.perf_counter() - t0
        for listener in self.listeners:
            listener(self, result)
        return result

    def reference_measures(self, test_inputs, acts: dict, outputs: dict) -> list:
        """CKA, Procrustes distance and a linear stitch on the same activations, so a user
        sees whether the diffusion-map transformation beats what they already know."""
        from .measures import LinearCKA, LinearStitch, ProcrustesDistance

        p, (sa, sb) = self.pair, (self.activations["a"][0], self.activations["b"][0])
        found = []
        try:
            found += [
                criterion("cka", "a<->b", LinearCKA().fit(sa, sb).score_),
                criterion("cka_debiased", "a<->b", LinearCKA(debiased=True).fit(sa, sb).score_),
                criterion("procrustes_distance", "a<->b", ProcrustesDistance().fit(sa, sb).score_),
            ]
        except EquivtestError as exc:  # e.g. a constant layer: the measure is undefined, not the run
            found.append(criterion("cka", "a<->b", float("nan"), f"undefined: {exc}"))
        for source, target in DIRECTIONS:
            if target == "a" and p.domain_map is not None:
                continue
            direction = f"{source}->{target}"
            linear = LinearStitch().fit(self.activations[source][0], self.activations[target][0])
            found.append(criterion("linear_activation_mse", direction, np.mean((linear.predict(acts[source]) - acts[target]) ** 2)))
            stitched = linear.stitched_network(
                p.network(source), p.network(target), p.layer(source), p.layer(target),
                target_input_map=p.domain_map if target == "b" else None, batch_size=self.config.batch_size,
            )(test_inputs, source_activations=acts[source])
            if p.task == "classification":
                found.append(criterion("linear_agreement", direction,
                                       np.mean(stitched.argmax(axis=1) == outputs[target].argmax(axis=1))))
            else:
                found.append(criterion("linear_output_mse", direction, np.mean((stitched - outputs[target]) ** 2)))
        return found

    def whitney(self):
        p = self.pair
        d = p.intrinsic_dim if p.intrinsic_dim is not None else estimate_intrinsic_dimension(self.samples.samples)
        out = []
        for side in ("a", "b"):
            x = p.inputs_for(side, self.samples.samples[:2])
            widths = layer_widths(p.network(side), x, p.layer(side).path)
            check = whitney_check(widths, self.activations[side][0].shape[1], d)
            detail = f"d={d}, 2d+1={check.required}, narrowest {check.narrowest[0]}={check.narrowest[1]}"
            out.append(criterion("whitney", side, check.value, detail).with_threshold(check.required))
        return out


def _throttled_progress(stage: Stage | None, label: str, every_s: float = 2.0):
    """A capture progress callback that reports through ``stage`` at most every ``every_s``
    seconds (and at the end), so long captures show movement without flooding a log."""
    if stage is None:
        return None
    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - last[0] >= every_s:
            last[0] = now
            stage(f"{label}: {done:,}/{total:,} inputs")

    return progress


def fit_pair(pair: NetworkPair, sampler: Sampler, config: FitConfig | None = None, *, stage: Stage | None = None) -> FittedPair:
    """Draw samples, capture both networks, fit the transformation in both directions."""
    config = config or FitConfig()
    samples, activations, timings = _capture_pair(pair, sampler, config, stage)
    rows = _drawn_rows(len(activations["a"][0]), config.max_rows, sampler.seed, stage)
    if rows is not None:
        activations = {side: (s[rows], nb[rows]) for side, (s, nb) in activations.items()}
    return _fit(pair, sampler, config, samples, activations, timings, stage)


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
    for side in ("a", "b"):
        if pair.layer(side).layout is None:
            raise EquivtestError(
                f"fit_slice_lengths needs sequence layers; layer {pair.layer(side).path!r} has no layout "
                "(give LayerSpec(..., layout='bsf') or fit it with fit_pair)"
            )
    positions = _with_slice_length(pair, 1)
    samples, captured, timings = _capture_pair(positions, sampler, config, stage)
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
        yield _fit(sliced, sampler, config, samples, activations, {**timings, "cut_s": time.perf_counter() - t}, stage)
        del activations  # held by the fit just handed out; the caller decides when it goes


def _with_slice_length(pair: NetworkPair, p: int) -> NetworkPair:
    return replace(pair, name=f"{pair.name}-p{p}", metadata={**pair.metadata, "slice_length": p},
                   layer_a=replace(pair.layer_a, slice_length=p), layer_b=replace(pair.layer_b, slice_length=p))


def _capture_pair(pair: NetworkPair, sampler: Sampler, config: FitConfig, stage: Stage | None):
    """The samples and both networks' activations of them and of their neighbourhoods."""
    timings = {}
    t = time.perf_counter()
    if stage:
        stage("sampling")
    samples = sampler.draw()
    timings["sampling_s"] = time.perf_counter() - t
    activations = {}
    for side in ("a", "b"):
        if stage:
            stage(f"capturing {pair.names[0 if side == 'a' else 1]} at {pair.layer(side).path!r}")
        t = time.perf_counter()
        mapped = samples if side == "a" or pair.domain_map is None else samples.mapped(pair.domain_map)
        activations[side] = capture_neighbourhoods(
            pair.network(side), mapped.samples, mapped.neighbourhoods, pair.layer(side), batch_size=config.batch_size,
            progress=_throttled_progress(stage, f"capturing {pair.names[0 if side == 'a' else 1]}"),
        )
        timings[f"capture_{side}_s"] = time.perf_counter() - t
    return samples, activations, timings


def _fit(pair, sampler, config, samples, activations, timings, stage) -> FittedPair:
    if stage:
        stage("fitting the transformation")
    t = time.perf_counter()
    transformation = config.transformation(pair.names).fit(*activations["a"], *activations["b"], stage=stage)
    timings["fit_s"] = time.perf_counter() - t
    return FittedPair(pair, sampler, config, samples, transformation, activations, timings)


def _drawn_rows(n: int, max_rows: int | None, seed: int, stage: Stage | None = None) -> np.ndarray | None:
    """Which ``max_rows`` of ``n`` rows a fit uses, drawn at random (``None``: all of them).
    The same rows of both networks are taken, so the pairing stays."""
    if max_rows is None or n <= int(max_rows):
        return None
    rows = np.sort(np.random.default_rng(seed).choice(n, int(max_rows), replace=False))
    if stage:
        stage(f"fitting on {len(rows)} of {n} rows, drawn at random")
    return rows
