"""Positions of variable-length sequences as paired rows (the pairing of transformers pairs)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..._memory import RowStore
from ...errors import EquivtestError
from ...layers import fill_unpredicted
from ...pairing import Captured, TestRows, content_digest
from ...sampling import GaussianNeighbourhood
from .sequences import ALIGNMENTS, align_length, select_positions

TARGET_INPUTS = ("real", "dummy")


@dataclass(frozen=True)
class Positions:
    """How inputs become rows: neighbourhoods, positions per input, length alignment.

    ``align`` is one of :data:`ALIGNMENTS` or a position map ``align(sample, length_a, length_b)``
    giving, for each of B's positions, the position of A's sequence that pairs with it (e.g.
    :func:`~equivtest.adapters.hf.ctc_alignment`); a position map stitches from A into B only.
    ``target_input``: what the stitched network's target is fed before the replaced layer,
    the real input (``"real"``) or a dummy of the same length (``"dummy"``).
    """

    neighbourhood: GaussianNeighbourhood = GaussianNeighbourhood(100, 0.05)
    positions: int | tuple = 64
    align: str | Callable = "trim"
    seed: int = 0
    batch_size: int = 50
    target_input: str = "real"

    def __post_init__(self):
        if not callable(self.align) and self.align not in ALIGNMENTS:
            raise EquivtestError(f"align must be one of {ALIGNMENTS} or a position map "
                                 f"align(sample, length_a, length_b), got {self.align!r}")
        if isinstance(self.positions, (int, np.integer)) and int(self.positions) < 1:
            raise EquivtestError(f"positions must be a positive count or a list of positions, got {self.positions}")
        if self.target_input not in TARGET_INPUTS:
            raise EquivtestError(f"target_input must be one of {TARGET_INPUTS}, got {self.target_input!r}")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise EquivtestError(f"batch_size must be a positive whole number, got {self.batch_size!r}")

    def describe(self) -> dict:
        nb = self.neighbourhood
        return {"kind": "positions",
                "neighbourhood": {"kind": type(nb).__name__, "size": nb.size, "delta": nb.delta,
                                  "convention": nb.convention},
                "positions": self.positions if isinstance(self.positions, int) else list(self.positions),
                "align": getattr(self.align, "__name__", "position map") if callable(self.align) else self.align,
                "seed": self.seed, "target_input": self.target_input}

    def data_key(self, data) -> str:
        return content_digest((list(data), self))

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

    # -- the fit's rows ------------------------------------------------------------------
    def capture(self, pair, data, config, stage=None, *, dtype=None) -> Captured:
        """Per input: each network's sequence and its neighbours' (drawn per network), aligned
        to one length; ``positions`` of them (the same in the input and in each neighbour).

        The forward passes run in length-sorted padded batches across inputs
        (:mod:`~equivtest.adapters.hf.batching`), a window of inputs at a time, while the
        random draws keep the one-at-a-time order: per input, A's neighbourhood, B's, then
        the positions. So the rows equal those of one pass per input and per batch of
        neighbours, to float32 rounding.

        The inputs' own sequences run first, window by window (they draw nothing), and give
        every input's length, so its number of rows. Then ``config``'s
        :class:`~equivtest._memory.RowStore` makes the rows' arrays (``config=None``: in
        memory) and each window's rows are written into them as they are captured: under
        ``FitConfig(memory_budget=...)`` the neighbourhood rows that do not fit go to disk
        (:class:`~equivtest._memory.DiskRows`) a window at a time, never all in memory.

        The rows keep each network's precision (:func:`~equivtest.capture.row_dtype`: float32
        for a float32 model), as its forward passes give them: trimming, resampling and a
        position map only pick positions. ``align="pad"`` keeps float64 rows: its padding is
        the mean of a sequence's float32 rows taken in float64, which float32 cannot hold.
        ``dtype`` (e.g. ``np.float64``) asks for rows of that dtype instead.
        """
        from ...capture import row_dtype

        samples = _as_samples(data)
        store = config.row_store() if config is not None else RowStore()
        dtypes = {s: np.dtype(dtype) if dtype is not None else np.dtype(np.float64) if self.align == "pad"
                  else row_dtype(pair.side(s).model) for s in "ab"}
        t0 = time.perf_counter()
        window = self._window()
        windows = [range(first, min(len(samples), first + window)) for first in range(0, len(samples), window)]
        if stage:
            stage(f"capturing the sequences of the {len(samples)} samples in both networks")
        own = [self._own_sequences(pair, samples, w, dtypes) for w in windows]
        counts = {i: self._row_count(len(seqs["a"][i]), len(seqs["b"][i]), i) for _, seqs in own for i in seqs["b"]}
        if not counts:
            raise EquivtestError("no input gave rows (every domain-map output was empty)")
        total, m = sum(counts.values()), int(self.neighbourhood.size)
        widths = {s: next(q for _, seqs in own for q in seqs[s].values()).shape[1] for s in "ab"}
        allocate = store.allocator()  # in the order engine.within_budget counts them: A's rows, A's neighbours, B's
        rows = {s: (allocate((total, widths[s]), dtypes[s], f"samples-{s}"),
                    allocate((total, m, widths[s]), dtypes[s], f"neighbourhoods-{s}")) for s in "ab"}
        groups, skipped, at = np.empty(total, dtype=np.int64), [], 0
        rng = np.random.default_rng(self.seed)
        for k, w in enumerate(windows):
            if stage:
                stage(f"capturing samples {w.start + 1}-{w.stop}/{len(samples)} "
                      "and their neighbourhoods in both networks")
            (xs, seqs), own[k] = own[k], None  # a window's own sequences go once its rows are written
            for i, found in self._capture_window(pair, samples, w, xs, seqs, rng, dtypes):
                if found is None:
                    skipped.append(i)
                    continue
                n = len(found["a"][0])
                if n != counts[i]:
                    raise EquivtestError(f"sample {i} gave {n} rows where its lengths gave {counts[i]}")
                for side, (s, nb) in found.items():
                    rows[side][0][at : at + n] = s
                    rows[side][1][at : at + n] = nb
                groups[at : at + n] = i
                at += n
        info = {"n_inputs": len(samples), "n_rows": int(total), "skipped": skipped,
                "neighbourhood_size": int(self.neighbourhood.size)}
        return Captured(rows, groups, None, info, {"capture_s": time.perf_counter() - t0})

    def _window(self) -> int:
        """Inputs per window: enough for 16 batches of neighbour passes per network (at least one)."""
        return max(1, (16 * int(self.batch_size)) // (int(self.neighbourhood.size) + 1))

    def _aligned_length(self, length_a: int, length_b: int) -> int:
        if callable(self.align):
            return length_b
        return max(length_a, length_b) if self.align == "pad" else min(length_a, length_b)

    def _row_count(self, length_a: int, length_b: int, i: int) -> int:
        """The rows input ``i`` gives: the positions that :meth:`_plan` will take (an explicit
        list is checked here, before any neighbour pass; a count draws nothing yet)."""
        length = self._aligned_length(length_a, length_b)
        if isinstance(self.positions, (int, np.integer)):
            return min(int(self.positions), length)
        return len(select_positions(length, self.positions, None, f"sample {i} (aligned length {length})"))

    def _own_sequences(self, pair, samples: list, window: range, dtypes: dict):
        """``(encoded, sequences)``, each ``{side: {i: ...}}``, of the inputs of ``window``: their
        encodings and layer rows ``(T_i, f)`` (batched per window). An input that the domain map
        turns into no text has none of B's (it is skipped); no random draws."""
        from .batching import capture_encoded

        nets = {s: pair.side(s) for s in "ab"}
        xs = {"a": {}, "b": {}}
        for i in window:
            for side, net in nets.items():
                x = pair.inputs_for(side, samples[i])
                if side == "b" and pair.domain_map is not None and net.modality == "text" and not str(x).strip():
                    break  # the domain map gave nothing (e.g. an empty transcript)
                xs[side][i] = net.encode(x, f"sample {i} ({net.name})")
        seqs = {s: dict(zip(xs[s], capture_encoded(nets[s], list(xs[s].values()), self.batch_size, dtype=dtypes[s])))
                for s in "ab"}
        return xs, seqs

    def _capture_window(self, pair, samples: list, window: range, xs: dict, seqs: dict, rng, dtypes: dict):
        """``(i, {side: (rows (P, f), neighbour rows (P, M, f))})`` per input of ``window``, or ``(i, None)``
        for an input the domain map turned into no text, from the window's encodings and own
        sequences (:meth:`_own_sequences`), in ``dtypes[side]``. Draws from ``rng`` in the one-at-a-time order."""
        from .batching import capture_neighbours, draw_neighbourhood

        nets = {s: pair.side(s) for s in "ab"}
        drawn, plans = {"a": [], "b": []}, {}
        for i in window:
            for side in "ab":
                if i in xs[side]:
                    d = draw_neighbourhood(nets[side], xs[side][i], self.neighbourhood, rng,
                                           f"sample {i} ({nets[side].name})")
                    if i in xs["b"]:  # a skipped input's draws only keep the order
                        drawn[side].append(d)
            if i in xs["b"]:
                plans[i] = self._plan(samples[i], len(seqs["a"][i]), len(seqs["b"][i]), rng, i)
        nbs = {s: dict(zip(plans, capture_neighbours(nets[s], drawn[s], self.batch_size, dtype=dtypes[s])))
               for s in "ab"}
        for i in window:
            if i not in plans:
                yield i, None
                continue
            index, length, pos = plans[i]
            sa, na, sb, nb = seqs["a"][i], nbs["a"][i], seqs["b"][i], nbs["b"][i]
            if index is not None:
                sa, na = sa[index], na[:, index]
            else:
                sa, na, sb, nb = (align_length(v, length, self.align) for v in (sa, na, sb, nb))
            yield i, {"a": (sa[pos], na[:, pos].transpose(1, 0, 2)), "b": (sb[pos], nb[:, pos].transpose(1, 0, 2))}

    def _plan(self, item, length_a: int, length_b: int, rng, i: int):
        """``(position map or None, aligned length, positions)`` of one input; the positions drawn from ``rng``."""
        index = self.mapped(item, length_a, length_b) if callable(self.align) else None
        length = self._aligned_length(length_a, length_b)
        return index, length, select_positions(length, self.positions, rng, f"sample {i} (aligned length {length})")

    # -- evaluation ----------------------------------------------------------------------
    def directions(self, pair) -> list[tuple[str, str]]:
        return [("a", "b")] + ([] if pair.domain_map is not None or callable(self.align) else [("b", "a")])

    def test_rows(self, pair, inputs, fit_info: dict | None = None) -> TestRows:
        """Each network's sequence rows of every test input, and its own answers. With a
        position map, A's rows are those at the positions that pair with B's."""
        from .batching import answers, capture_sequences

        inputs = _as_samples(inputs, "test inputs")
        raw = {s: [pair.inputs_for(s, item) for item in inputs] for s in "ab"}
        for side in ("a", "b"):  # each input checked with its index before any batch runs
            net = pair.side(side)
            for i, x in enumerate(raw[side]):
                net.encode(x, f"test input {i} ({net.name})")
        # length-sorted padded batches, equal to one-at-a-time passes to float32 rounding
        seqs = {s: capture_sequences(pair.side(s), raw[s], self.batch_size) for s in "ab"}
        if callable(self.align):
            seqs["a"] = [a[self.mapped(item, len(a), len(b))] for item, a, b in zip(inputs, seqs["a"], seqs["b"])]
        rows = {s: np.concatenate(seqs[s]) for s in "ab"}
        groups = {s: np.concatenate([np.full(len(q), i) for i, q in enumerate(seqs[s])]) for s in "ab"}
        targets = {target for _, target in self.directions(pair)}  # only a target's own answers are compared
        outputs = {s: answers(pair.side(s), raw[s], batch_size=self.batch_size) for s in "ab" if s in targets}
        return TestRows(inputs, rows, groups, outputs, {"raw": raw})

    def _per_input(self, test: TestRows, predicted: np.ndarray, source: str, target: str):
        """Pairs (predicted sequence, target's true sequence) per input."""
        n = int(max(test.groups[source].max(), test.groups[target].max())) + 1
        bounds = np.cumsum([0] + np.bincount(test.groups[source], minlength=n).tolist())
        tb = np.cumsum([0] + np.bincount(test.groups[target], minlength=n).tolist())
        for i in range(n):
            yield predicted[bounds[i] : bounds[i + 1]], test.rows[target][tb[i] : tb[i + 1]]

    def paired(self, test: TestRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every position of every test input as paired rows ``(A, B, input)``, aligned as the
        fit aligns them (a position map's rows already pair; else trim, pad or resample)."""
        out_a, out_b, groups = [], [], []
        for seq_a, seq_b in self._per_input(test, test.rows["a"], "a", "b"):
            if not callable(self.align):
                length = max(len(seq_a), len(seq_b)) if self.align == "pad" else min(len(seq_a), len(seq_b))
                seq_a, seq_b = align_length(seq_a, length, self.align), align_length(seq_b, length, self.align)
            out_a.append(seq_a)
            out_b.append(seq_b)
            groups.append(np.full(len(seq_a), len(groups)))
        return np.concatenate(out_a), np.concatenate(out_b), np.concatenate(groups)

    def activation_mse(self, test: TestRows, predicted: np.ndarray, source: str, target: str) -> float:
        sq_err, n_err = 0.0, 0
        for pred, true in self._per_input(test, predicted, source, target):
            if self.align == "resample":
                sq_err += float(np.sum((align_length(pred, len(true), "resample") - true) ** 2))
                n_err += true.size
            else:
                common = min(len(pred), len(true))
                sq_err += float(np.sum((pred[:common] - true[:common]) ** 2))
                n_err += common * true.shape[1]
        return sq_err / max(n_err, 1)

    def stitch(self, pair, test: TestRows, predicted: np.ndarray, target: str) -> list:
        """The target's answer per test input with its layer's output replaced by the predicted rows."""
        from .batching import answers

        tgt = pair.side(target)
        mode = "resample" if self.align == "resample" else "trim"
        source = "a" if target == "b" else "b"
        predicted_per_input = [pred for pred, _ in self._per_input(test, predicted, source, target)]

        def replace(i, seq):
            t, f_all = seq.shape[1], seq.shape[2]
            rows = align_length(predicted_per_input[i], t, mode)
            full = fill_unpredicted(rows, tgt.feature_index(f_all), f_all, tgt.layer)
            return torch.as_tensor(full[None], dtype=seq.dtype, device=seq.device)

        raw = test.extra["raw"][target]
        if self.target_input == "real":
            return answers(tgt, raw, replace=replace, batch_size=self.batch_size)
        found = []  # a dummy input of each input's length: one at a time
        for i, item in enumerate(raw):
            x = tgt.encode(item, f"test input {i} ({tgt.name})")
            found.append(tgt.answer(tgt.dummy(x), replace=lambda seq, i=i: replace(i, seq)))
        return found


def _as_samples(data, what: str = "samples") -> list:
    if isinstance(data, (str, bytes)) or not hasattr(data, "__len__"):
        raise EquivtestError(f"the {what} of a transformers pair are a list of texts or waveforms, "
                             f"got {type(data).__name__}")
    if len(data) == 0:
        raise EquivtestError(f"no {what} given; pass a list of audio arrays or strings")
    return list(data)


def answers_by_direction(result) -> dict:
    """Per direction of an evaluated transformers pair: the target's own answers and the
    stitched network's, ``{"a->b": {"own": [...], "stitched": [...]}}``."""
    arrays = result.arrays
    if arrays is None:
        raise EquivtestError("this result holds no answers; give the result evaluate() returned")
    return {d: {"own": list(arrays.outputs[d[-1]]), "stitched": list(s)} for d, s in arrays.stitched.items()}
