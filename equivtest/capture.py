"""Activation capture (step 3): forward hooks on a layer named by its module path.

The thesis ran one forward pass per sample and per neighbourhood point; here inputs
go through in batches, the hook records the layer's output, and (by default) the
forward pass stops right after the layer, because nothing later is needed.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Callable

import numpy as np
import torch
from torch import nn

from .errors import ActivationError, EquivtestError, LayerNotFoundError
from .layers import LayerSpec

Progress = Callable[[int, int], None]


def resolve_layer(model: nn.Module, path: str) -> nn.Module:
    """``model.get_submodule(path)`` with an error that lists the closest names."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [name for name, _ in model.named_modules() if name]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.4)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else (
            f"available layers: {', '.join(repr(n) for n in names[:20])}" + (" ..." if len(names) > 20 else "")
        )
        raise LayerNotFoundError(
            f"{type(model).__name__} has no layer {path!r}; {hint} "
            "(layers are named by module path, as in model.named_modules())"
        ) from None


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Eval mode for the duration; afterwards every submodule gets back its own flag
    (``model.train(flag)`` would overwrite submodules kept in eval on purpose)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in modes:
            m.training = flag


class _StopForward(Exception):
    """Raised by the capture hook to end a forward pass once the layer has run."""


def model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def model_dtype(model: nn.Module) -> torch.dtype:
    for tensor in model.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.get_default_dtype()


def capture(
    model: nn.Module,
    inputs,
    layer: "str | LayerSpec",
    *,
    batch_size: int = 8192,
    stop_early: bool = True,
    progress: Progress | None = None,
    place: "Callable[[int, int, torch.Tensor], None] | None" = None,
    dtype=np.float64,
) -> np.ndarray | None:
    """Run ``inputs`` through ``model`` in batches and return the layer's activations.

    Returns an array of ``dtype`` (float64 unless asked; the fit's rows ask for the
    network's own, see :func:`row_dtype`) of shape ``(len(inputs) * slices, n_features)``: each output
    becomes rows as ``layer`` says (flattened per input, or a sequence cut into slices;
    see :class:`LayerSpec`). Inputs go to the model's own device and dtype. The hook is
    removed even when the forward pass raises.

    ``place(first_input, n_inputs, rows)``, if given, receives each batch's rows instead
    (``rows`` holds ``n_inputs`` inputs' rows, input by input) and nothing is returned:
    callers that lay rows out differently write them once, straight into their own arrays.
    """
    spec = LayerSpec.of(layer)
    module = resolve_layer(model, spec.path)
    if int(batch_size) < 1:
        raise EquivtestError(f"batch_size must be a positive integer, got {batch_size}")
    x, device = as_model_input(model, inputs), model_device(model)
    n = x.shape[0]
    recorded: list[np.ndarray] = []  # the filled output, a one-element list once allocated
    batches = {"count": 0, "start": 0, "expected": 1}

    def keep(start: int, count: int, rows: torch.Tensor) -> None:
        if not recorded:  # rows per input are known from the first batch
            recorded.append(np.empty((n * (rows.shape[0] // count), rows.shape[1]), dtype=dtype))
        per = rows.shape[0] // count
        recorded[0][start * per : (start + count) * per] = rows.numpy()

    sink = place or keep
    torch_dtype = torch.float64 if np.dtype(dtype) == np.float64 else torch.float32
    # With early stop a layer that runs twice per pass would silently give its first
    # output; one full pass on one sample first counts how often it runs.
    probe = {"on": bool(stop_early) and n > 0, "runs": 0}

    def hook(_module, _inputs, output):
        if probe["on"]:
            probe["runs"] += 1
            return
        batches["count"] += 1
        if batches["count"] != batches["expected"]:
            return  # a second run in the same pass: counted, refused after the loop
        rows = spec.to_rows(output).detach().to("cpu", torch_dtype)
        sink(batches["start"], min(int(batch_size), n - batches["start"]), rows)
        if stop_early:
            raise _StopForward

    handle = module.register_forward_hook(hook)
    try:
        with eval_mode(model), torch.no_grad():
            if probe["on"]:
                model(x[:1].to(device))
                probe["on"] = False
                if probe["runs"] != 1:
                    raise ActivationError(
                        f"layer {spec.path!r} ran {probe['runs']} times in one forward pass; "
                        "capture needs a layer that runs exactly once per forward pass"
                    )
            for start in range(0, n, int(batch_size)):
                batches["start"], batches["expected"] = start, start // int(batch_size) + 1
                batch = x[start : start + int(batch_size)].to(device)
                try:
                    model(batch)
                except _StopForward:
                    pass
                if progress is not None:
                    progress(min(start + int(batch_size), n), n)
    finally:
        handle.remove()
    if batches["count"] != -(-n // int(batch_size)):
        raise ActivationError(
            f"layer {spec.path!r} ran {batches['count']} times for {-(-n // int(batch_size))} batches; "
            "capture needs a layer that runs exactly once per forward pass"
        )
    if place is not None:
        return None
    return recorded[0] if recorded else np.empty((0, 0))


def capture_neighbourhoods(
    model: nn.Module,
    samples: np.ndarray,
    neighbourhoods: np.ndarray,
    layer: "str | LayerSpec",
    *,
    allocate: "Callable[[tuple, np.dtype, str], np.ndarray] | None" = None,
    **kwargs,
) -> tuple[np.ndarray, np.ndarray]:
    """Activations of samples ``(R, F)`` and of their neighbourhoods ``(R, M, F)``.

    R is N, or N times the slices per input for a sliced sequence layer: slice k of
    sample i is row ``i * slices + k``, and its neighbourhood is slice k of sample i's
    neighbours.

    Both are kept in the network's own precision (:func:`row_dtype`): float32 when it
    computes in 32 bits or fewer, float64 when in 64. Every value came out of the network
    in that precision, so nothing is lost; the geometry converts them to float64 a block
    of rows at a time, where it needs to.

    ``allocate(shape, dtype, label)``, if given, makes the two output arrays (``label`` is
    ``"samples"`` or ``"neighbourhoods"``): e.g. a :class:`equivtest._memory.RowStore` that
    puts them in a file on disk when they would exceed a memory budget. Each batch's rows
    are written once, straight into them.
    """
    n, m = neighbourhoods.shape[:2]
    dtype = row_dtype(model)
    make = allocate or (lambda shape, dtype, label: np.empty(shape, dtype=dtype))
    flat = np.concatenate([samples, neighbourhoods.reshape(n * m, *neighbourhoods.shape[2:])])
    out = {}

    def place(start: int, count: int, rows: torch.Tensor) -> None:
        # Rows go straight to their final place (no full-size copy for the reordering):
        # input k < n is sample k; input n + i*m + j is neighbour j of sample i.
        stride = rows.shape[0] // count
        if not out:
            out["samples"] = make((n * stride, rows.shape[1]), dtype, "samples")
            out["nb"] = make((n * stride, m, rows.shape[1]), dtype, "neighbourhoods")
        rows = rows.numpy().reshape(count, stride, -1)
        k = np.arange(start, start + count)
        own = k < n
        if own.any():
            out["samples"][k[own, None] * stride + np.arange(stride)] = rows[own]
        if (~own).any():
            i, j = np.divmod(k[~own] - n, m)
            out["nb"][i[:, None] * stride + np.arange(stride), j[:, None]] = rows[~own]

    capture(model, flat, layer, place=place, dtype=dtype, **kwargs)
    return out["samples"], out["nb"]


def row_dtype(model: nn.Module) -> np.dtype:
    """The dtype that holds a network's activations without loss: float64 for a network
    that computes in float64, else float32 (float32, float16 and bfloat16 all fit in it)."""
    return np.dtype(np.float64) if model_dtype(model) == torch.float64 else np.dtype(np.float32)


def torch_row_dtype(model: nn.Module, dtype=None) -> torch.dtype:
    """The torch dtype of captured rows: ``dtype`` (float32 or float64) if given, else
    :func:`row_dtype` of ``model``."""
    chosen = row_dtype(model) if dtype is None else np.dtype(dtype)
    if chosen not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise EquivtestError(f"rows are captured as float32 or float64, got dtype={dtype!r}")
    return torch.float64 if chosen == np.float64 else torch.float32


def layer_widths(model: nn.Module, example_input, up_to: str) -> list[tuple[str, int]]:
    """Width (features per sample) of every leaf module's output up to ``up_to``, in run order.

    Used by the Whitney criterion: no layer before the chosen one may be narrower than
    2d+1. Only leaf modules count, so containers are not listed twice. A tuple output
    counts by its first tensor (an LSTM's output sequence, not its final states).
    """
    target = resolve_layer(model, up_to)
    widths: list[tuple[str, int]] = []
    handles = []

    def make_hook(name):
        def hook(_module, _inputs, output):
            while isinstance(output, (tuple, list)) and output:  # an LSTM's (out, (h, c)): its output sequence
                output = output[0]
            if isinstance(output, torch.Tensor):
                widths.append((name, int(np.prod(output.shape[1:])) if output.ndim > 1 else 1))
            if _module is target:
                raise _StopForward
        return hook

    for name, module in model.named_modules():
        if module is target or not any(True for _ in module.children()):
            handles.append(module.register_forward_hook(make_hook(name)))
    x = as_model_input(model, example_input).to(model_device(model))
    try:
        with eval_mode(model), torch.no_grad():
            try:
                model(x)
            except _StopForward:
                pass
    finally:
        for h in handles:
            h.remove()
    return widths


def as_model_input(model: nn.Module, inputs) -> torch.Tensor:
    """Inputs as a tensor in the model's floating dtype (integer inputs such as token ids kept)."""
    x = inputs if isinstance(inputs, torch.Tensor) else torch.as_tensor(np.asarray(inputs))
    return x.to(model_dtype(model)) if x.is_floating_point() else x


def forward_batched(model: nn.Module, inputs, batch_size: int = 8192) -> np.ndarray:
    """Full forward pass in eval mode and in batches; float64 outputs on the CPU."""
    x, device = as_model_input(model, inputs), model_device(model)
    with eval_mode(model), torch.no_grad():
        outs = [model(x[s : s + batch_size].to(device)).to("cpu", torch.float64) for s in range(0, len(x), batch_size)]
    return torch.cat(outs).numpy()
