"""LayerSpec: where to read a layer's activations, and how they become samples.

A plain layer's output is flattened per input. A *sequence* layer (``layout`` given,
e.g. ``"bsf"`` for batch, sequence, feature or ``"bfs"`` for a Conv1d's batch,
channel, length) is brought to (batch, sequence, feature) order, its neurons are
selected on the feature axis, and with ``slice_length=p`` the sequence of length T
is cut into T/p slices of p equidistant positions (stride T/p), each slice one sample
of p * features values, as in the thesis (T = 100, p = 25: 4 slices, positions 4
apart). ``to_rows`` does that; ``from_rows`` puts predicted rows back into the
layer's own output shape, filling unpredicted neurons with the per-position mean of
the predicted ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from .errors import ActivationError, EquivtestError

LAYOUTS = {"bsf": (0, 1, 2), "bfs": (0, 2, 1), "sbf": (1, 0, 2)}  # permutation to (batch, seq, feature)
CUT_BLOCK_BYTES = 64 << 20  # LayerSpec.cut gathers at most about this much at a time


@dataclass(frozen=True)
class LayerSpec:
    """Where to read activations: a module path and how to turn its output into rows.

    ``path``: a name from ``model.named_modules()`` (e.g. ``"act3"``, ``"encoder.layers.11"``).
    ``neurons``: features to keep (indices, or a slice such as ``slice(None, None, 4)``).
    ``output``: for layers that return tuples (an LSTM returns ``(out, (h, c))``), the
    index of the tensor to use, or a function ``output -> tensor``.
    ``layout``: axes of a sequence output, one of ``"bsf"``, ``"bfs"``, ``"sbf"``.
    ``slice_length``: with a layout, cut the sequence into slices of this many positions.
    """

    path: str
    neurons: Sequence[int] | slice | None = None
    output: int | Callable | None = None
    layout: str | None = None
    slice_length: int | None = None

    def __post_init__(self):
        if self.layout is not None and self.layout not in LAYOUTS:
            raise EquivtestError(f"layout must be one of {sorted(LAYOUTS)} (b: batch, s: sequence, f: feature), got {self.layout!r}")
        if self.slice_length is not None and (self.layout is None or int(self.slice_length) < 1):
            raise EquivtestError("slice_length needs a sequence layout (layout='bsf', ...) and must be a positive integer")

    @classmethod
    def of(cls, layer: "str | LayerSpec") -> "LayerSpec":
        return layer if isinstance(layer, LayerSpec) else cls(str(layer))

    # -- reading ------------------------------------------------------------------------
    def tensor(self, output) -> torch.Tensor:
        """The tensor this spec reads from a module's output (tuple outputs need ``output``)."""
        if isinstance(output, torch.Tensor):
            return output
        if isinstance(output, (tuple, list)):
            if self.output is None:
                raise ActivationError(
                    f"layer {self.path!r} returns a {type(output).__name__} of {len(output)} items; say which to "
                    f"use with LayerSpec({self.path!r}, output=0) (an index) or output=lambda out: ... (a selector)"
                )
            picked = self.output(output) if callable(self.output) else output[self.output]
            if isinstance(picked, torch.Tensor):
                return picked
        raise ActivationError(
            f"layer {self.path!r} returned {type(output).__name__}, not a tensor; "
            "choose a layer whose output is a tensor, or pick one with output=..."
        )

    def _select(self, x: torch.Tensor) -> torch.Tensor:
        if self.neurons is None:
            return x
        index = self.neurons if isinstance(self.neurons, slice) else list(self.neurons)
        return x[..., index]

    def stride(self, sequence_length: int) -> int:
        """Slices per input for a sequence of this length (1 without slicing)."""
        if self.slice_length is None:
            return 1
        p = int(self.slice_length)
        if sequence_length % p:
            raise ActivationError(
                f"slice_length {p} does not divide the sequence length {sequence_length} of layer {self.path!r}; "
                f"use a divisor of {sequence_length}, e.g. {[d for d in range(1, sequence_length + 1) if sequence_length % d == 0][-3:]}"
            )
        return sequence_length // p

    def n_rows(self, output) -> int:
        """How many rows ``to_rows`` gives for this output, without building them."""
        x = self.tensor(output)
        if self.layout is None:
            return int(x.shape[0])
        b, t = (x.shape[i] for i in LAYOUTS[self.layout][:2])
        return int(b) * self.stride(int(t))

    def to_rows(self, output) -> torch.Tensor:
        """Rows of features: ``(batch * slices, features)``."""
        x = self.tensor(output)
        if self.layout is None:
            return self._select(x.reshape(x.shape[0], -1))
        if x.ndim != 3:
            raise ActivationError(f"layer {self.path!r} with layout {self.layout!r} needs a 3-d output, got shape {tuple(x.shape)}")
        seq = self._select(x.permute(*LAYOUTS[self.layout]))  # (b, T, f)
        b, t, f = seq.shape
        stride = self.stride(t)
        p = t // stride
        # position j * stride + k belongs to slice k, as its j-th element
        return seq.reshape(b, p, stride, f).transpose(1, 2).reshape(b * stride, p * f)

    def cut(self, positions: np.ndarray, n_inputs: int, rows: np.ndarray | None = None) -> np.ndarray:
        """This spec's rows cut from the same layer's rows at slice length 1.

        ``positions`` has shape ``(n_inputs * T, [M,] f)``: row ``i * T + t`` is position t
        of input i (what a capture at ``slice_length=1`` gives; M for neighbourhoods). The
        result is what a capture with this spec gives, ``(n_inputs * T/p, [M,] p * f)`` with
        row ``i * (T/p) + k`` slice k of input i, or only the rows listed in ``rows``: one
        forward pass serves every slice length, and only the rows a fit uses are copied.
        """
        if self.slice_length is None:
            raise EquivtestError(f"layer {self.path!r}: cut needs a slice_length")
        if n_inputs < 1 or len(positions) % n_inputs:
            raise ActivationError(f"{len(positions)} position rows are not whole sequences of {n_inputs} inputs")
        p, stride = int(self.slice_length), self.stride(len(positions) // n_inputs)
        rest, f = positions.shape[1:-1], positions.shape[-1]
        grid = positions.reshape(n_inputs, p, stride, *rest, f)  # position j * stride + k: slice k, element j
        rows = np.arange(n_inputs * stride) if rows is None else np.asarray(rows)
        inputs, slices = np.divmod(rows, stride)
        view = np.moveaxis(grid, 1, -2)  # (inputs, slices, [M,] p, f), no copy
        out = np.empty((len(rows), *rest, p, f), dtype=positions.dtype)
        # gathered a block of rows at a time: numpy's gather from a strided view makes a
        # temporary as large as its result, and the result can be gigabytes
        step = max(1, CUT_BLOCK_BYTES // max(1, out[:1].nbytes))
        for start in range(0, len(rows), step):
            block = slice(start, start + step)
            out[block] = view[inputs[block], slices[block]]
        return out.reshape(len(rows), *rest, p * f)

    # -- writing ------------------------------------------------------------------------
    def from_rows(self, rows: np.ndarray, template: torch.Tensor) -> torch.Tensor:
        """Predicted rows back in ``template``'s shape (the layer's original output tensor)."""
        if self.layout is None:
            n_features = int(np.prod(template.shape[1:]))
            full = fill_unpredicted(rows, self.neurons, n_features, self.path)
            return torch.as_tensor(full, dtype=template.dtype, device=template.device).reshape(template.shape)
        perm = LAYOUTS[self.layout]
        b, t, f_all = (template.shape[i] for i in perm)
        stride = self.stride(t)
        p = t // stride
        selected = rows.shape[1] // p
        if rows.shape[0] != b * stride or rows.shape[1] != p * selected:
            raise ActivationError(
                f"predicted rows of shape {rows.shape} do not fit layer {self.path!r}: expected ({b * stride}, "
                f"{p} x features) for {b} inputs of sequence length {t}; the two networks' sequence lengths or "
                "slice lengths differ"
            )
        seq = rows.reshape(b, stride, p, selected).transpose(0, 2, 1, 3).reshape(b * t, selected)
        full = fill_unpredicted(seq, self.neurons, f_all, self.path).reshape(b, t, f_all)
        inverse = np.argsort(perm)
        return torch.as_tensor(full, dtype=template.dtype, device=template.device).permute(*inverse).contiguous()

    def replace(self, output, rows: np.ndarray):
        """The module's output with the read tensor replaced by ``rows`` (tuples rebuilt)."""
        new = self.from_rows(rows, self.tensor(output))
        if isinstance(output, torch.Tensor):
            return new
        if callable(self.output):
            raise EquivtestError(
                f"layer {self.path!r}: cannot write back through a selector function; give output= as an index"
            )
        items = list(output)
        items[self.output] = new
        return type(output)(items)

    def describe(self) -> dict:
        neurons = self.neurons
        if isinstance(neurons, slice):
            neurons = f"slice({neurons.start}, {neurons.stop}, {neurons.step})"
        elif neurons is not None:
            neurons = [int(i) for i in neurons]
        output = getattr(self.output, "__name__", "function") if callable(self.output) else self.output
        return {"path": self.path, "neurons": neurons, "output": output, "layout": self.layout,
                "slice_length": self.slice_length}


def fill_unpredicted(predicted: np.ndarray, neurons, n_features: int, path: str = "layer") -> np.ndarray:
    """Full rows: predicted neurons in place, every other neuron the row's mean of the predicted ones.

    For sequence layers each row is one position, so the mean is per position.
    """
    if neurons is None:
        if predicted.shape[1] != n_features:
            raise EquivtestError(
                f"the transformation predicts {predicted.shape[1]} features but layer {path!r} has "
                f"{n_features}; select the same neurons as at fit time"
            )
        return predicted
    full = np.repeat(predicted.mean(axis=1, keepdims=True), n_features, axis=1)
    index = np.arange(n_features)[neurons] if isinstance(neurons, slice) else np.asarray(neurons)
    full[:, index] = predicted
    return full
