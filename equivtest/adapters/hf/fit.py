"""Pairs of transformers networks: sampling rows, fitting, stitching, evaluating."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...criteria import EquivalenceResult, criterion
from ...engine import FitConfig
from ...errors import EquivtestError
from ...layers import fill_unpredicted
from ...sampling import GaussianNeighbourhood
from .network import HFNetwork
from .sequences import ALIGNMENTS, align_length, select_positions
from .words import word_agreement

TARGET_INPUTS = ("real", "dummy")
TASKS = ("classification", "transcription")


@dataclass
class HFPair:
    """Two :class:`HFNetwork`s; ``domain_map`` maps a sample of A's domain to B's."""

    a: HFNetwork
    b: HFNetwork
    name: str = "pair"
    names: tuple[str, str] = ("a", "b")
    domain_map: Callable | None = None
    task: str = "classification"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.task not in TASKS:
            raise EquivtestError(f"task must be one of {TASKS}, got {self.task!r}")
        if len(self.names) != 2 or self.names[0] == self.names[1]:
            raise EquivtestError(f"names must be two distinct labels, got {self.names!r}")

    def network(self, side: str) -> HFNetwork:
        return self.a if side == "a" else self.b

    def input_for(self, side: str, sample):
        return self.domain_map(sample) if side == "b" and self.domain_map is not None else sample

    def describe(self) -> dict:
        return {"name": self.name, "names": list(self.names), "networks": {s: self.network(s).describe() for s in "ab"},
                "task": self.task,
                "domain_map": None if self.domain_map is None else getattr(self.domain_map, "__name__", "custom"),
                **({"metadata": self.metadata} if self.metadata else {})}


@dataclass(frozen=True)
class HFSampling:
    """How samples become rows: neighbourhoods, positions per sample, length alignment.

    ``align`` is one of :data:`ALIGNMENTS` or a position map ``align(sample, length_a, length_b)``
    giving, for each of B's positions, the position of A's sequence that pairs with it (e.g.
    :func:`~equivtest.adapters.hf.ctc_alignment`); a position map stitches from A into B only.
    """

    neighbourhood: GaussianNeighbourhood = GaussianNeighbourhood(100, 0.05)
    positions: int | tuple = 64
    align: str | Callable = "trim"
    seed: int = 0
    batch_size: int = 50

    def __post_init__(self):
        if not callable(self.align) and self.align not in ALIGNMENTS:
            raise EquivtestError(f"align must be one of {ALIGNMENTS} or a position map "
                                 f"align(sample, length_a, length_b), got {self.align!r}")
        if isinstance(self.positions, (int, np.integer)) and int(self.positions) < 1:
            raise EquivtestError(f"positions must be a positive count or a list of positions, got {self.positions}")

    def describe(self) -> dict:
        nb = self.neighbourhood
        return {"neighbourhood": {"kind": type(nb).__name__, "size": nb.size, "delta": nb.delta,
                                  "convention": nb.convention},
                "positions": self.positions if isinstance(self.positions, int) else list(self.positions),
                "align": getattr(self.align, "__name__", "position map") if callable(self.align) else self.align,
                "seed": self.seed}

    def mapped(self, sample, length_a: int, length_b: int) -> np.ndarray:
        """The position map's A position for each of B's positions, checked."""
        index = np.asarray(self.align(sample, length_a, length_b)).reshape(-1)
        if index.shape != (length_b,) or not np.issubdtype(index.dtype, np.integer):
            raise EquivtestError(f"the position map gave {index.shape} {index.dtype} where B has {length_b} positions; "
                                 "it must give one integer position of A per position of B")
        if index.size and (index.min() < 0 or index.max() >= length_a):
            raise EquivtestError(f"the position map points at A's position(s) beyond 0..{length_a - 1}: "
                                 f"{sorted(set(index[(index < 0) | (index >= length_a)].tolist()))}")
        return index


def _with_neighbourhood(net: HFNetwork, sample, nb: GaussianNeighbourhood, rng, batch: int, where: str):
    """The sample's layer sequence ``(T, f)`` and its neighbours' ``(M, T, f)``."""
    x = net.encode(sample, where)
    m, std = int(nb.size), nb.std
    if net.modality == "audio":
        noisy = x.numpy()[None].astype(np.float64) + std * rng.standard_normal((m, x.numel()))
        noisy = torch.as_tensor(noisy, dtype=torch.float32)
        nbs = torch.cat([net.sequences(noisy[s : s + batch]) for s in range(0, m, batch)])
    else:
        emb = net.embed(x[None])  # (1, T, E)
        noise = torch.as_tensor(rng.standard_normal((m, *emb.shape[1:])), dtype=emb.dtype)
        noisy = emb + std * noise
        ids = x[None].expand(m, -1)
        nbs = torch.cat([net.sequences(ids[s : s + batch], embeddings=noisy[s : s + batch]) for s in range(0, m, batch)])
    return net.sequences(x[None])[0].numpy(), nbs.numpy()


class _RecordSamples:
    """What a run record and the plot arrays need to know of the samples."""

    def __init__(self, n_samples: int, neighbourhood_size: int):
        self.n_samples, self.neighbourhood_size = n_samples, neighbourhood_size
        self.samples = np.zeros((n_samples, 1))
        self.neighbourhoods = np.zeros((n_samples, neighbourhood_size, 1))


@dataclass
class HFFitted:
    """A fitted HF pair: the transformation, the rows it saw and the stitched networks."""

    pair: HFPair
    sampler: HFSampling
    config: FitConfig
    transformation: Any
    activations: dict
    sample_rows: list  # per sample: number of rows it gave
    timings: dict = field(default_factory=dict)
    skipped: list = field(default_factory=list)

    def __post_init__(self):
        self.samples = _RecordSamples(len(self.sample_rows), self.sampler.neighbourhood.size)
        self.test_activations = None  # the plot arrays of fixed-shape pairs do not apply

    def directions(self):
        yield "a", "b"
        if self.pair.domain_map is None and not callable(self.sampler.align):
            yield "b", "a"

    def stitched_answers(self, inputs: Sequence, to: str, *, target_input: str = "real") -> dict:
        """Per input of A's domain: the target's own answer, the stitched answer, and activation errors."""
        if target_input not in TARGET_INPUTS:
            raise EquivtestError(f"target_input must be one of {TARGET_INPUTS}, got {target_input!r}")
        target = self.transformation.side(to)
        source = "a" if target == "b" else "b"
        if target == "a" and self.pair.domain_map is not None:
            raise EquivtestError("stitching into A needs the inverse of the domain map; this pair runs from A into B only")
        mapped = callable(self.sampler.align)
        if target == "a" and mapped:
            raise EquivtestError("a position map pairs B's positions with A's, so it stitches from A into B only; "
                                 "use align='trim', 'pad' or 'resample' to stitch into A")
        src, tgt = self.pair.network(source), self.pair.network(target)
        xt, seqs, trues = [], [], []
        for i, item in enumerate(inputs):
            xs = src.encode(self.pair.input_for(source, item), f"test input {i} ({src.name})")
            xt.append(tgt.encode(self.pair.input_for(target, item), f"test input {i} ({tgt.name})"))
            seq = src.sequences(xs[None])[0].numpy()
            trues.append(tgt.sequences(xt[-1][None])[0].numpy())
            if mapped:  # A's rows at the positions that pair with B's
                seq = seq[self.sampler.mapped(item, len(seq), len(trues[-1]))]
            seqs.append(seq)
        predicted = self.transformation.predict(np.concatenate(seqs), to=target)
        bounds = np.cumsum([0] + [len(s) for s in seqs])
        own, stitched, sq_err, n_err = [], [], 0.0, 0
        for i, true in enumerate(trues):
            pred = predicted[bounds[i] : bounds[i + 1]]
            if self.sampler.align == "resample":
                sq_err += float(np.sum((align_length(pred, len(true), "resample") - true) ** 2))
                n_err += true.size
            else:
                common = min(len(pred), len(true))
                sq_err += float(np.sum((pred[:common] - true[:common]) ** 2))
                n_err += common * true.shape[1]

            def replace(seq, pred=pred):
                t, f_all = seq.shape[1], seq.shape[2]
                rows = align_length(pred, t, "resample" if self.sampler.align == "resample" else "trim")
                full = fill_unpredicted(rows, tgt.feature_index(f_all), f_all, tgt.layer)
                return torch.as_tensor(full[None], dtype=seq.dtype, device=seq.device)

            own.append(tgt.answer(xt[i]))
            start = xt[i] if target_input == "real" else tgt.dummy(xt[i])
            stitched.append(tgt.answer(start, replace=replace))
        return {"own": own, "stitched": stitched, "activation_mse": sq_err / max(n_err, 1)}

    def evaluate(self, test_inputs: Sequence, *, thresholds: dict | None = None, stage=None,
                 target_input: str = "real") -> EquivalenceResult:
        """Activation MSE and agreement of the stitched network with the target, per direction."""
        t0 = time.perf_counter()
        found = []
        residual = self.transformation.diffusion_residual()
        self.test_answers = {}
        for source, target in self.directions():
            direction = f"{source}->{target}"
            if stage:
                stage(f"stitched network {direction} on {len(test_inputs)} test inputs")
            out = self.test_answers[direction] = self.stitched_answers(test_inputs, target, target_input=target_input)
            found.append(criterion("activation_mse", direction, out["activation_mse"]))
            found.append(criterion("diffusion_residual", direction, residual[direction]))
            agree = np.mean([o == s for o, s in zip(out["own"], out["stitched"])])
            found.append(criterion("agreement", direction, agree, f"target input: {target_input}"))
            if self.pair.task == "transcription":
                found.append(criterion("word_agreement", direction, word_agreement(out["own"], out["stitched"])))
        found.extend(self.transformation.geometry_criteria())
        result = EquivalenceResult(self.pair.name, found, {"n_test": len(test_inputs), "target_input": target_input})
        if thresholds:
            result = result.with_thresholds(thresholds)
        self.timings["evaluate_s"] = time.perf_counter() - t0
        return result

def fit_hf(pair: HFPair, samples: Sequence, config: FitConfig | None = None, sampling: HFSampling | None = None,
           *, stage=None) -> HFFitted:
    """Samples -> per-position rows of both networks (with neighbourhoods) -> transformation."""
    config, sampling = config or FitConfig(), sampling or HFSampling()
    if len(samples) == 0:
        raise EquivtestError("no samples given; pass a list of audio arrays or strings")
    rng = np.random.default_rng(sampling.seed)
    rows = {"a": ([], []), "b": ([], [])}
    counts, skipped, timings = [], [], {}
    t0 = time.perf_counter()
    for i, item in enumerate(samples):
        if stage and i % 16 == 0:
            stage(f"capturing sample {i + 1}/{len(samples)} and its neighbourhoods in both networks")
        seqs = {}
        for side in ("a", "b"):
            net = pair.network(side)
            x = pair.input_for(side, item)
            if side == "b" and pair.domain_map is not None and net.modality == "text" and not str(x).strip():
                skipped.append(i)  # the domain map gave nothing (e.g. an empty transcript)
                break
            seqs[side] = _with_neighbourhood(net, x, sampling.neighbourhood, rng, sampling.batch_size,
                                             f"sample {i} ({net.name})")
        if len(seqs) < 2:
            continue
        (sa, na), (sb, nb) = seqs["a"], seqs["b"]
        if callable(sampling.align):
            index = sampling.mapped(item, len(sa), len(sb))
            sa, na, length = sa[index], na[:, index], len(sb)
        else:
            length = max(len(sa), len(sb)) if sampling.align == "pad" else min(len(sa), len(sb))
            sa, na, sb, nb = (align_length(s, length, sampling.align) for s in (sa, na, sb, nb))
        pos = select_positions(length, sampling.positions, rng, f"sample {i} (aligned length {length})")
        for side, s, n in (("a", sa, na), ("b", sb, nb)):
            rows[side][0].append(s[pos])
            rows[side][1].append(n[:, pos].transpose(1, 0, 2))
        counts.append(len(pos))
    if not counts:
        raise EquivtestError("no sample gave rows (every domain-map output was empty)")
    timings["capture_s"] = time.perf_counter() - t0
    activations = {s: (np.concatenate(rows[s][0]), np.concatenate(rows[s][1])) for s in "ab"}
    if stage:
        stage(f"fitting the transformation on {len(activations['a'][0])} rows")
    t0 = time.perf_counter()
    transformation = config.transformation(tuple(pair.names)).fit(*activations["a"], *activations["b"], stage=stage)
    timings["fit_s"] = time.perf_counter() - t0
    return HFFitted(pair, sampling, config, transformation, activations, counts, timings, skipped)
