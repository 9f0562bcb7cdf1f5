"""How the rows of two networks pair: one value per pair, beside the two networks.

A pairing turns the fit's data into paired rows of both networks (with the rows of each
input's neighbourhood), turns test inputs into paired test rows, scores predicted rows
against true ones, and runs the target network with its layer's output replaced.

- :class:`Samples`: fixed-shape inputs drawn by a :class:`~equivtest.sampling.Sampler`;
  each input gives one row, or one row per slice for a sliced sequence layer
  (:class:`~equivtest.layers.LayerSpec`), and row k of A pairs with row k of B.
- :class:`equivtest.adapters.hf.Positions`: variable-length text or audio; positions of
  the two sequences pair after an alignment (trim, pad, resample) or a position map.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from .capture import model_dtype
from .errors import EquivtestError
from .networks import check_inputs

Stage = Callable[[str], None]


@dataclass(frozen=True)
class Captured:
    """The fit's paired rows: ``activations[side] = (rows (R, F), neighbourhood rows (R, M, F))``.

    ``groups[r]`` is the input row ``r`` came from; ``samples`` the drawn
    :class:`~equivtest.sampling.SampleSet` where inputs are arrays (else ``None``);
    ``info`` what the record states about the rows (counts, skipped inputs).
    """

    activations: dict
    groups: np.ndarray
    samples: Any = None
    info: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TestRows:
    """Paired test rows: ``rows[side]`` with ``groups[side]``, and each network's own outputs."""

    inputs: Any
    rows: dict
    groups: dict
    outputs: dict
    extra: dict = field(default_factory=dict)  # what a pairing keeps for its own stitching


class Pairing(Protocol):
    """How rows pair (see the module docstring)."""

    def describe(self) -> dict: ...

    def capture(self, pair, data, config, stage: Stage | None = None) -> Captured: ...

    def directions(self, pair) -> list[tuple[str, str]]: ...

    def test_rows(self, pair, inputs, fit_info: dict | None = None) -> TestRows: ...

    def paired(self, test: TestRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def activation_mse(self, test: TestRows, predicted: np.ndarray, source: str, target: str) -> float: ...

    def stitch(self, pair, test: TestRows, predicted: np.ndarray, target: str) -> Any: ...

    def data_key(self, data) -> str: ...


def throttled_progress(stage: Stage | None, label: str, every_s: float = 2.0):
    """A progress callback ``(done, total)`` that reports through ``stage`` at most every
    ``every_s`` seconds (and at the end), so long captures show movement without flooding a log."""
    if stage is None:
        return None
    last = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - last[0] >= every_s:
            last[0] = now
            stage(f"{label}: {done:,}/{total:,} inputs")

    return progress


def content_digest(value) -> str:
    """SHA-256 of what ``value`` holds: arrays and tensors by their bytes, dtype and shape,
    containers item by item, dataclasses field by field, other objects by ``repr``
    (functions by identity). Two values with the same digest hold the same data."""
    h = hashlib.sha256()
    _feed(h, value, set())
    return h.hexdigest()


def _feed(h, value, seen: set) -> None:
    import dataclasses

    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        h.update(f"nd{value.dtype.str}{value.shape}".encode())
        h.update(np.ascontiguousarray(value).tobytes() if value.dtype != object else repr(value.tolist()).encode())
    elif isinstance(value, (str, bytes, int, float, bool, type(None), np.generic)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}[{len(value)}".encode())
        for item in value:
            _feed(h, item, seen)
        h.update(b"]")
    elif isinstance(value, dict):
        h.update(f"dict[{len(value)}".encode())
        for k in sorted(value, key=repr):
            _feed(h, k, seen)
            _feed(h, value[k], seen)
        h.update(b"]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        if id(value) in seen:
            h.update(b"<cycle>")
            return
        seen.add(id(value))
        h.update(f"dc:{type(value).__module__}.{type(value).__qualname__}(".encode())
        for f in dataclasses.fields(value):
            h.update(f.name.encode())
            _feed(h, getattr(value, f.name), seen)
        h.update(b")")
    elif callable(value):
        # a function or callable object: its identity (two different maps never share a key)
        h.update(f"callable:{getattr(value, '__qualname__', type(value).__name__)}@{id(value)}".encode())
    elif hasattr(value, "__dict__"):
        if id(value) in seen:
            h.update(b"<cycle>")
            return
        seen.add(id(value))
        h.update(f"obj:{type(value).__module__}.{type(value).__qualname__}(".encode())
        _feed(h, vars(value), seen)
        h.update(b")")
    else:
        h.update(f"{type(value).__qualname__}@{id(value)}".encode())


@dataclass(frozen=True)
class Samples:
    """Fixed-shape inputs: the fit's data is a :class:`~equivtest.sampling.Sampler` (or a
    drawn :class:`~equivtest.sampling.SampleSet`); row k of A pairs with row k of B."""

    def describe(self) -> dict:
        return {"kind": "samples"}

    def draw(self, data):
        from .sampling import Sampler, SampleSet

        if isinstance(data, SampleSet):
            return data
        if isinstance(data, Sampler) or hasattr(data, "draw"):
            return data.draw()
        raise EquivtestError(
            f"a pair of fixed-shape networks is fitted on a Sampler (points and neighbourhoods), got "
            f"{type(data).__name__}; e.g. Sampler(GridPoints(...), GaussianNeighbourhood(size, delta))"
        )

    def data_key(self, data) -> str:
        """The drawn samples' content: two samplers that draw the same inputs share a fit."""
        samples = self.draw(data)
        return content_digest((samples.samples, samples.neighbourhoods))

    def capture(self, pair, data, config, stage: Stage | None = None) -> Captured:
        timings = {}
        t = time.perf_counter()
        if stage:
            stage("sampling")
        samples = self.draw(data)
        check_inputs(samples.samples, "the samples")
        check_inputs(samples.neighbourhoods.reshape(-1, *samples.samples.shape[1:]),
                     "the neighbourhood points (delta must be finite)")
        timings["sampling_s"] = time.perf_counter() - t
        activations, store = {}, config.row_store()  # rows beyond the config's memory budget go to disk
        for side in ("a", "b"):
            name = pair.names[0 if side == "a" else 1]
            net = pair.side(side)
            if stage:
                stage(f"capturing {name} at {net.layer.path!r}")
            t = time.perf_counter()
            mapped = samples if side == "a" or pair.domain_map is None else samples.mapped(pair.domain_map)
            activations[side] = net.neighbourhood_rows(mapped.samples, mapped.neighbourhoods,
                                                       progress=throttled_progress(stage, f"capturing {name}"),
                                                       allocate=store.allocator())
            timings[f"capture_{side}_s"] = time.perf_counter() - t
            _warn_collapsed(activations[side][1], net, name)
        n = samples.n_samples
        per = len(activations["a"][0]) // max(n, 1)
        groups = np.repeat(np.arange(n), per)
        info = {"n_inputs": n, "n_rows": int(len(groups)), "neighbourhood_size": samples.neighbourhood_size,
                "input_shape": list(samples.samples.shape[1:])}
        return Captured(activations, groups, samples, info, timings)

    def directions(self, pair) -> list[tuple[str, str]]:
        return [("a", "b")] + ([] if pair.domain_map is not None else [("b", "a")])

    def test_rows(self, pair, inputs, fit_info: dict | None = None) -> TestRows:
        shape = (fit_info or {}).get("input_shape")
        x = check_inputs(inputs, "the test inputs", width=None if shape is None else tuple(shape))
        rows, groups, outputs = {}, {}, {}
        for side in ("a", "b"):
            net, xs = pair.side(side), pair.inputs_for(side, x)
            rows[side], groups[side] = net.rows(xs)
            outputs[side] = net.run(xs)
        return TestRows(x, rows, groups, outputs)

    def paired(self, test: TestRows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows of A and B that pair one to one (``(A, B, input)``): row k of each, as captured."""
        a, b = test.rows["a"], test.rows["b"]
        if len(a) != len(b):
            raise EquivtestError(f"the two networks give {len(a)} and {len(b)} rows for the same inputs; rows pair "
                                 "one to one only with the same slices of sequences of the same length")
        return a, b, np.asarray(test.groups["a"])

    def activation_mse(self, test: TestRows, predicted: np.ndarray, source: str, target: str) -> float:
        return float(np.mean((predicted - test.rows[target]) ** 2))

    def stitch(self, pair, test: TestRows, predicted: np.ndarray, target: str):
        return pair.side(target).run(pair.inputs_for(target, test.inputs), rows=predicted)


def _warn_collapsed(neighbourhoods: np.ndarray, net, name: str) -> None:
    """Warn when neighbourhood rows collapse onto a few values: a delta below what the
    network's dtype resolves (float16 and bfloat16 networks with a tiny delta)."""
    import warnings

    import torch

    module = getattr(net, "module", None)
    if module is None or model_dtype(module) not in (torch.float16, torch.bfloat16):
        return
    n_check = min(len(neighbourhoods), 16)
    nb = np.asarray(neighbourhoods[:n_check])  # the first rows only (the rows may be on disk)
    distinct = [len(np.unique(nb[i].reshape(nb.shape[1], -1), axis=0)) for i in range(n_check)]
    if n_check and np.median(distinct) < 0.5 * nb.shape[1]:
        warnings.warn(
            f"{name}: neighbourhood rows collapse onto {int(np.median(distinct))} distinct points of "
            f"{nb.shape[1]} (median over {n_check} samples): the network computes in {model_dtype(module)}, "
            "which cannot resolve the neighbourhood's spread; raise delta or run the network in float32",
            RuntimeWarning, stacklevel=3,
        )
