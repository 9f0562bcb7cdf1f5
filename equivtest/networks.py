"""One side of a pair: a network and the layer read from it, behind one small protocol.

Every network kind equivtest compares implements :class:`Network`:

- ``rows(inputs)``: the layer's rows for a batch of inputs, and which input each row
  came from;
- ``neighbourhood_rows(...)``: the rows of each input and of its neighbourhood;
- ``run(inputs, rows=None)``: the network's outputs, with the layer's output replaced
  by ``rows`` when given (the stitched network's second half);
- ``answers(outputs, task)``: what the network answers (the output itself for
  regression, a class for classification, a transcript for transcription).

:class:`TorchNetwork` serves plain torch modules with fixed-shape inputs (this module);
:class:`equivtest.adapters.hf.HFNetwork` serves transformers models with variable-length
text or audio. How rows of the two networks pair (whole samples, sequence slices,
positions with an alignment) is a separate value, a pairing (:mod:`equivtest.pairing`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from .capture import (
    as_model_input, capture, capture_neighbourhoods, eval_mode, layer_widths, model_device, model_dtype, resolve_layer,
    torch_row_dtype,
)
from .errors import ActivationError, EquivtestError
from .layers import LayerSpec

TASKS = ("regression", "classification", "transcription")


@runtime_checkable
class Network(Protocol):
    """What equivtest needs of one network (see the module docstring)."""

    name: str

    def run(self, inputs, rows=None) -> Any: ...

    def answers(self, outputs, task: str) -> Any: ...

    def widths(self, example) -> list[tuple[str, int]]: ...

    def describe(self) -> dict: ...


@contextlib.contextmanager
def recording(layers: dict):
    """Forward hooks that keep, per forward pass, what each layer gave: ``layers`` maps a
    name to ``(module, convert)``; each pass appends ``convert(output)`` to ``kept[name]``.

    The one multi-layer capture of every network kind (:meth:`TorchNetwork.capture_layers`,
    :meth:`equivtest.adapters.hf.HFNetwork.capture_layers`): one forward pass records every
    layer. Use :func:`check_recorded` after each pass. The hooks are removed on exit.
    """
    kept = {name: [] for name in layers}
    handles = []

    def hook_for(name, convert):
        def hook(_module, _inputs, output):
            kept[name].append(convert(output))
        return hook

    try:
        for name, (module, convert) in layers.items():
            handles.append(module.register_forward_hook(hook_for(name, convert)))
        yield kept
    finally:
        for handle in handles:
            handle.remove()


def check_recorded(kept: dict, passes: int, where: str) -> None:
    """Each layer ran once per forward pass (a layer that runs twice has no single output)."""
    for name, outputs in kept.items():
        if len(outputs) != passes:
            raise ActivationError(
                f"layer {name!r} of {where} ran {len(outputs)} times in {passes} forward pass(es); a layer read in a "
                "sweep must run exactly once per pass: read a module that does (e.g. its parent block)")


def output_tensor(output, select, where: str) -> torch.Tensor:
    """The tensor a network's ``forward`` gave: the output itself, or ``select`` of a dict or tuple."""
    if isinstance(output, torch.Tensor) and select is None:
        return output
    if select is None:
        kind = type(output).__name__
        keys = list(output.keys()) if isinstance(output, dict) else (
            f"indices 0..{len(output) - 1}" if isinstance(output, (tuple, list)) else None)
        raise EquivtestError(
            f"{where} returns a {kind}, not a tensor; say which part is the output with "
            f"NetworkPair(..., output_a=..., output_b=...) (a key or an index"
            + (f": {keys}" if keys is not None else "") + ", or a function output -> tensor)"
        )
    if callable(select):
        out = select(output)
    else:
        try:
            out = output[select]
        except (KeyError, IndexError, TypeError) as exc:
            raise EquivtestError(f"{where}: output selector {select!r} does not apply to its "
                                 f"{type(output).__name__} output ({exc!r})") from None
        if hasattr(out, "logits") and not isinstance(out, torch.Tensor):
            out = out.logits
    if not isinstance(out, torch.Tensor):
        raise EquivtestError(f"{where}: the output selector gave a {type(out).__name__}, not a tensor")
    return out


def check_inputs(inputs, where: str, *, width: tuple | None = None) -> np.ndarray | torch.Tensor:
    """Test or sample inputs of a fixed-shape network, refused with the fix named.

    Accepts a numpy array or a tensor of floats (token ids: integers) with at least one
    input; a tensor that requires grad is detached. NaN or inf inputs are refused with the
    first bad input's index; ``width`` is the per-input shape the network was fitted on.
    """
    if isinstance(inputs, torch.Tensor):
        x = inputs.detach().cpu()
        if x.dtype == torch.bool:
            raise EquivtestError(f"{where} are booleans; give float inputs (x.float()) or integer token ids")
        arr = x.numpy()
    else:
        try:
            arr = np.asarray(inputs)
        except Exception as exc:  # ragged lists and the like
            raise EquivtestError(f"{where} cannot be read as an array ({exc}); give one array of inputs") from None
        if arr.dtype == bool:
            raise EquivtestError(f"{where} are booleans; give float inputs (x.astype(float)) or integer token ids")
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)):
            raise EquivtestError(f"{where} have dtype {arr.dtype}; give a numeric array of shape (n_inputs, ...)")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise EquivtestError(f"{where} are empty (shape {arr.shape}); give at least one input, shape (n_inputs, ...)")
    if arr.ndim == 1:
        raise EquivtestError(
            f"{where} have shape {arr.shape}: one axis only; inputs are (n_inputs, *input_shape) — "
            f"for scalar inputs use x[:, None]" + (f" (the fit saw inputs of shape {width})" if width else "")
        )
    if width is not None and tuple(arr.shape[1:]) != tuple(width):
        raise EquivtestError(
            f"{where} have per-input shape {tuple(arr.shape[1:])}, the fit's inputs {tuple(width)}; "
            "give inputs of A's domain in the fit's shape (a pair whose networks take different inputs "
            "needs a domain_map from A's inputs to B's)"
        )
    if np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating):
        bad = ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        if bad.any():
            first = int(np.argmax(bad))
            raise EquivtestError(
                f"{where}: {int(bad.sum())} input(s) hold NaN or inf (first: input {first}); "
                "remove them or, for neighbourhoods, use a finite delta"
            )
    return inputs.detach() if isinstance(inputs, torch.Tensor) else arr


def finite_outputs(outputs: np.ndarray, where: str) -> np.ndarray:
    """Rows of ``outputs`` that are finite everywhere (a NaN or inf answer is not an answer)."""
    flat = np.asarray(outputs, dtype=np.float64).reshape(len(outputs), -1)
    return np.isfinite(flat).all(axis=1)


@dataclass
class TorchNetwork:
    """A torch module with fixed-shape inputs, read at ``layer`` (a :class:`LayerSpec`).

    ``output`` picks the network's output when ``forward`` returns a dict or a tuple
    (a key, an index or a function); ``batch_size`` bounds every forward pass.
    """

    module: nn.Module
    layer: LayerSpec
    name: str = "network"
    output: Any = None
    batch_size: int = 8192

    def __post_init__(self):
        if not isinstance(self.module, nn.Module):
            raise TypeError(f"network {self.name!r} must be a torch.nn.Module, got {type(self.module).__name__}")
        self.layer = LayerSpec.of(self.layer)
        resolve_layer(self.module, self.layer.path)

    # -- rows ----------------------------------------------------------------------------
    def rows(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """The layer's rows for ``inputs`` (float64) and the input index of each row."""
        acts = self._capture(lambda: capture(self.module, inputs, self.layer, batch_size=self.batch_size), inputs)
        return acts, np.repeat(np.arange(len(inputs)), len(acts) // max(len(inputs), 1))

    def neighbourhood_rows(self, samples, neighbourhoods, progress=None, allocate=None) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the samples ``(R, F)`` and of their neighbourhoods ``(R, M, F)``, in the
        network's precision; ``allocate`` makes the arrays (see ``capture_neighbourhoods``)."""
        return self._capture(lambda: capture_neighbourhoods(
            self.module, samples, neighbourhoods, self.layer, batch_size=self.batch_size, progress=progress,
            allocate=allocate), samples)

    def _capture(self, run: Callable, inputs):
        try:
            return run()
        except RuntimeError as exc:
            error = self._shape_error(exc, inputs)
            if error is None:
                raise
            raise error from exc

    def _shape_error(self, exc: RuntimeError, inputs) -> Exception | None:
        """A shape mismatch inside the network as an error naming both shapes and the fix."""
        message = str(exc)
        dtype = getattr(inputs, "dtype", None)
        if "dtype" in message and dtype is not None and not np.issubdtype(np.dtype(str(dtype).replace("torch.", "")), np.floating):
            return EquivtestError(
                f"network {self.name!r} cannot take {dtype} inputs ({message.splitlines()[0]}); integer inputs are "
                "passed on unchanged (token ids): give float inputs, e.g. x.astype(float)"
            )
        if "shape" not in message and "size" not in message and "dimension" not in message:
            return None
        shape = tuple(np.shape(inputs))
        return EquivtestError(
            f"network {self.name!r} cannot take inputs of shape {shape} ({message.splitlines()[0]}); "
            "give inputs of the shape it was built for, and for a pair whose networks take different inputs "
            "a domain_map from A's inputs to B's"
        )

    def at(self, layer) -> "TorchNetwork":
        """The same network read at another ``layer`` (the module is shared, not copied)."""
        return dataclasses.replace(self, layer=LayerSpec.of(layer))

    def capture_layers(self, inputs, layers, *, dtype=None) -> tuple[dict, dict, np.ndarray]:
        """Every layer in ``layers`` (paths or :class:`LayerSpec`) from one forward pass per batch:
        ``(rows, groups, outputs)``, ``rows[path]`` as :meth:`rows` gives them, ``groups[path]``
        the input of each row, ``outputs`` the network's own outputs (as :meth:`run` gives them).

        The rows keep the network's precision (:func:`~equivtest.capture.row_dtype`: float32
        for a float32, float16 or bfloat16 network, float64 for a float64 one), half the
        memory of float64 rows with the same values; ``dtype`` (``np.float64``) asks for that instead."""
        specs = [LayerSpec.of(layer) for layer in layers]
        to = torch_row_dtype(self.module, dtype)
        watched = {s.path: (resolve_layer(self.module, s.path), lambda out, s=s: s.to_rows(out).detach().to("cpu", to))
                   for s in specs}
        n_passes = -(-len(inputs) // self.batch_size)
        with recording(watched) as kept:
            outputs = self._capture(lambda: self.run(inputs), inputs)
        check_recorded(kept, n_passes, f"network {self.name!r}")
        rows = {path: torch.cat(parts).numpy() for path, parts in kept.items()}
        groups = {path: np.repeat(np.arange(len(inputs)), len(r) // max(len(inputs), 1)) for path, r in rows.items()}
        return rows, groups, outputs

    # -- running -------------------------------------------------------------------------
    def run(self, inputs, rows: np.ndarray | None = None) -> np.ndarray:
        """Outputs (float64, on the CPU) for ``inputs``; with ``rows``, the layer's output is
        replaced by them (rows in :meth:`rows`' order, as many as it gives for these inputs)."""
        handle = None
        if rows is not None:
            cursor = {"start": 0}

            def replace(_module, _inputs, output):
                start = cursor["start"]
                n_rows = self.layer.n_rows(output)
                cursor["start"] = start + n_rows
                return self.layer.replace(output, rows[start : start + n_rows])

            handle = resolve_layer(self.module, self.layer.path).register_forward_hook(replace)
        x, device = as_model_input(self.module, inputs), model_device(self.module)
        where = f"network {self.name!r}"
        try:
            with eval_mode(self.module), torch.no_grad():
                outs = []
                for s in range(0, len(x), self.batch_size):
                    try:
                        out = self.module(x[s : s + self.batch_size].to(device))
                    except RuntimeError as exc:
                        error = self._shape_error(exc, inputs)
                        if error is None:
                            raise
                        raise error from exc
                    outs.append(output_tensor(out, self.output, where).to("cpu", torch.float64))
        finally:
            if handle is not None:
                handle.remove()
        return torch.cat(outs).numpy()

    def answers(self, outputs: np.ndarray, task: str) -> np.ndarray:
        """The output itself (regression) or the arg-max class (classification); rows
        with a NaN or inf output give class -1, which agrees with nothing."""
        if task == "classification":
            flat = np.asarray(outputs).reshape(len(outputs), -1)
            return np.where(finite_outputs(flat, self.name), np.nan_to_num(flat).argmax(axis=1), -1)
        return outputs

    def widths(self, example) -> list[tuple[str, int]]:
        return layer_widths(self.module, example, self.layer.path)

    def dtype(self) -> torch.dtype:
        return model_dtype(self.module)

    def describe(self) -> dict:
        return {"kind": "torch", "class": type(self.module).__name__, "name": self.name, "layer": self.layer.describe(),
                "output": None if self.output is None else getattr(self.output, "__name__", repr(self.output))}
