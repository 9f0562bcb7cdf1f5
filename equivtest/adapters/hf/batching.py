"""Variable-length inputs in padded batches: layer rows, neighbourhood rows and answers.

:class:`HFNetwork` runs one input (or one input's neighbours) per forward pass. The
functions here run many inputs per pass and give the same results, to float32 rounding:

- the inputs are sorted by length (stable) and cut into batches of ``batch_size``
  forward passes, so that each batch pads little; results come back in input order;
- text is padded with the tokenizer's pad id (:attr:`HFNetwork.pad_id`) and gets an
  ``attention_mask`` built from the lengths; XLNet is padded on the left (its relative
  attention keeps the distances, its sequence summary reads the last position), every
  other text model on the right (:attr:`HFNetwork.padding_side`);
- audio is padded on the right with zeros, after the network's own front end (``kwargs``:
  e.g. :class:`~equivtest.zoo.speech.LogMelNetwork` computes and normalises each
  utterance's log-mel features alone, so padding never enters the normalisation), and
  gets an ``attention_mask`` at the model input's resolution; the layer's positions per
  input come from the model's ``_get_feat_extract_output_lengths``
  (:meth:`HFNetwork.layer_lengths`);
- padding positions are dropped from the results, and the layer's padded length is
  checked against what the lengths predict (a mismatch is an error, not a silent shift);
- a batch whose inputs all have one length (e.g. the neighbours of one input) is stacked
  without padding or mask, as the one-at-a-time pass takes it.

How an audio model is batched (``padding="auto"``, :func:`padding_mode`): Wav2Vec2-type
models with ``feat_extract_norm == "layer"`` normalise each frame on its own and take the
attention mask (they zero the padded frames before the positional convolution), so they
are padded. With ``feat_extract_norm == "group"`` the first convolution is normalised
over the whole time axis, padding included, so padding changes every frame (transformers'
Wav2Vec2 feature extractor gives such models zero padding and no attention mask; the test
measures the change): these are batched only
among inputs of exactly equal length, without padding. That still batches all of one
sample's neighbours, and equal-length samples across samples. Other audio models with a
``_get_feat_extract_output_lengths`` (Speech2Text) are padded with a mask.

Rows are float64 by default (as :meth:`HFNetwork.sequences` gives them); the forward
passes run in the model's dtype (float32) and the rows are converted once, at the end.
The fit's rows (:meth:`~equivtest.adapters.hf.Positions.capture`) ask for ``dtype=`` the
model's own precision instead (:func:`~equivtest.capture.row_dtype`), which is exact.

Why "to float32 rounding": a padded batch computes each real position with the same
operations as a pass on that input alone, except that matrix products run on other
shapes (the BLAS sums in another order) and the softmax over keys includes masked keys
whose weight is exactly 0. So rows differ from one-at-a-time rows by a few float32 units
in the last place per operation, accumulated over the layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ...capture import eval_mode, model_device
from ...errors import ActivationError, EquivtestError
from .ctc import ctc_collapse
from .loading import StopForward, pick_output, put_output
from .network import HFNetwork

PADDINGS = ("auto", "mask", "equal_lengths")


def padding_mode(net: HFNetwork, padding: str = "auto") -> str:
    """How ``net``'s inputs of different lengths share a batch: ``"mask"`` (padded, with an
    attention mask) or ``"equal_lengths"`` (only inputs of equal length share a batch).
    ``"auto"`` chooses by the model (see the module doc)."""
    if padding not in PADDINGS:
        raise EquivtestError(f"padding must be one of {PADDINGS}, got {padding!r}")
    if padding != "auto":
        return padding
    if net.modality == "text":
        return "mask"
    norm = getattr(getattr(net.model, "config", None), "feat_extract_norm", None)
    if norm is not None:
        return "mask" if norm == "layer" else "equal_lengths"
    return "mask" if hasattr(net.model, "_get_feat_extract_output_lengths") else "equal_lengths"


@dataclass
class _Pass:
    """One row of a batch: input ``item``'s model input ``value`` (unpadded, positions first)
    and, for a text neighbour, the ``shift`` (``std * noise``, ``(T, E)``) added to its embedding output."""

    item: int
    value: torch.Tensor
    shift: torch.Tensor | None = None


@dataclass
class _Batch:
    passes: list
    kwargs: dict
    mask: bool
    starts: np.ndarray  # per row: first real position at the layer
    lengths: np.ndarray  # per row: real positions at the layer
    expected: int | None  # the layer's padded length the lengths predict (None: equal lengths, not padded)


def _encode_all(net: HFNetwork, inputs: Sequence, what: str) -> list:
    if isinstance(inputs, (str, bytes)) or not hasattr(inputs, "__len__"):
        raise EquivtestError(f"{what} must be a list of samples (strings or 1-d waveforms), got {type(inputs).__name__}")
    return [net.encode(sample, f"{what[:-1] if what.endswith('s') else what} {i} ({net.name})")
            for i, sample in enumerate(inputs)]


def _model_inputs(net: HFNetwork, xs: torch.Tensor) -> torch.Tensor:
    """The model's main input for ``xs``, a batch of equal-length encoded inputs: token ids as
    they are, audio through the network's front end (``kwargs``), computed per input, unpadded."""
    if net.modality == "text":
        return xs
    with torch.no_grad():
        return net.kwargs(xs)[net.input_name]


def _batches(net: HFNetwork, passes: list, batch_size: int, mode: str):
    """Length-sorted batches of ``passes`` with their padded keyword arguments."""
    if int(batch_size) < 1:
        raise EquivtestError(f"batch_size must be a positive number of forward passes per batch, got {batch_size}")
    lengths = np.array([p.value.shape[0] for p in passes], dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    groups, current = [], []
    for k in order:
        if current and (len(current) == batch_size or (mode == "equal_lengths" and lengths[k] != lengths[current[0]])):
            groups.append(current)
            current = []
        current.append(int(k))
    if current:
        groups.append(current)
    for group in groups:
        yield _padded(net, [passes[k] for k in group], mode), group


def _padded(net: HFNetwork, rows: list, mode: str) -> _Batch:
    values = [p.value for p in rows]
    n = np.array([v.shape[0] for v in values], dtype=np.int64)
    longest = int(n.max())
    first = values[0]
    if mode == "equal_lengths" or (n == longest).all():
        # nothing to pad: the pass one input at a time takes, on a stack (no mask, no padding checks)
        stacked = torch.stack(values).to(model_device(net.model))
        return _Batch(rows, _with_extra(net, {net.input_name: stacked}), False,
                      np.zeros(len(rows), dtype=np.int64), None, None)
    fill = net.pad_id if net.modality == "text" else 0
    padded = torch.full((len(values), longest, *first.shape[1:]), fill, dtype=first.dtype, device=first.device)
    mask = torch.zeros((len(values), longest), dtype=torch.long, device=first.device)
    left = net.padding_side == "left"
    for b, v in enumerate(values):
        span = slice(longest - len(v), longest) if left else slice(0, len(v))
        padded[b, span] = v
        mask[b, span] = 1
    at_layer = net.layer_lengths(n)
    expected = int(net.layer_lengths([longest])[0])
    starts = expected - at_layer if left else np.zeros(len(rows), dtype=np.int64)
    device = model_device(net.model)
    kw = {net.input_name: padded.to(device), "attention_mask": mask.to(device)}
    return _Batch(rows, _with_extra(net, kw), True, starts, at_layer, expected)


def _with_extra(net: HFNetwork, kw: dict) -> dict:
    if net.extra_inputs is not None:
        kw.update(net.extra_inputs(int(next(iter(kw.values())).shape[0])))
    return kw


def _layer_bsf(net: HFNetwork, out, batch: _Batch) -> torch.Tensor:
    seq = net._bsf(pick_output(out, net.output, net.layer))
    if batch.expected is not None and seq.shape[1] != batch.expected:
        raise ActivationError(
            f"layer {net.layer!r} of {net.name} gave {seq.shape[1]} positions for a padded batch whose lengths predict "
            f"{batch.expected}; its positions cannot be matched to the inputs, so batch inputs of equal length only "
            "(padding='equal_lengths')")
    return seq


def _spans(batch: _Batch, total: int):
    """Per row: the slice of its real positions at the layer (``total`` positions in all)."""
    if batch.lengths is None:
        return [slice(0, total)] * len(batch.passes)
    return [slice(int(s), int(s + t)) for s, t in zip(batch.starts, batch.lengths)]


def _noise_hook(net: HFNetwork, batch: _Batch):
    """A forward hook adding each text neighbour's ``shift`` to its embedding output (real positions)."""
    def hook(_m, _i, out):
        emb = pick_output(out, 0, net.embedding)
        bsf = net._bsf(emb)
        new = bsf.clone()
        for b, (p, span) in enumerate(zip(batch.passes, _spans(batch, bsf.shape[1]))):
            if p.shift is not None:
                new[b, span] = bsf[b, span] + p.shift.to(bsf.device, bsf.dtype)
        return put_output(out, 0, net._native(new))
    return hook


def _capture(net: HFNetwork, passes: list, batch_size: int, mode: str) -> list:
    """The selected features of the layer for every pass, ``(T, f)`` in the model's dtype, on the CPU."""
    rows = [None] * len(passes)
    for batch, group in _batches(net, passes, batch_size, mode):
        box = {}

        def layer_hook(_m, _i, out, batch=batch):
            seq = _layer_bsf(net, out, batch)
            box["seq"] = seq[..., net.feature_index(seq.shape[-1])].detach().to("cpu")
            raise StopForward

        handles = []
        if any(p.shift is not None for p in batch.passes):
            # registered first, so that a layer which is the embedding itself reads the shifted output
            handles.append(net._embedding.register_forward_hook(_noise_hook(net, batch)))
        handles.append(net._layer.register_forward_hook(layer_hook))
        net.run_until_stop(lambda batch=batch: batch.kwargs, handles)
        if "seq" not in box:
            raise ActivationError(f"layer {net.layer!r} did not run in a forward pass of {net.name}")
        seq = box["seq"]
        for b, span in enumerate(_spans(batch, seq.shape[1])):
            rows[group[b]] = seq[b, span]
    return rows


def _numpy(t: torch.Tensor, dtype) -> np.ndarray:
    return np.array(t.numpy(), dtype=dtype)  # a copy: a view would keep the whole padded batch alive


def capture_sequences(net: HFNetwork, inputs: Sequence, batch_size: int = 32, *, padding: str = "auto",
                      dtype=np.float64) -> list:
    """The layer's selected features per input: a list of ``(T_i, f)`` arrays in input order.

    ``inputs`` are samples as :meth:`HFNetwork.encode` takes them (strings, 1-d waveforms).
    They run in length-sorted batches of ``batch_size`` inputs, padded (with an attention
    mask) or of equal length only, as :func:`padding_mode` decides for ``padding``; the
    padding positions are dropped. Each array equals ``net.sequences(x[None])[0]`` to
    float32 rounding. The passes run in the model's dtype; the rows are converted to
    ``dtype`` (default float64, as ``sequences`` gives them) at the end.
    """
    mode = padding_mode(net, padding)
    return capture_encoded(net, _encode_all(net, inputs, "inputs"), batch_size, padding=mode, dtype=dtype)


def capture_encoded(net: HFNetwork, xs: Sequence[torch.Tensor], batch_size: int = 32, *, padding: str = "auto",
                    dtype=np.float64) -> list:
    """:func:`capture_sequences` of inputs already encoded (the 1-d tensors :meth:`HFNetwork.encode` gives)."""
    mode = padding_mode(net, padding)
    passes = [_Pass(i, _model_inputs(net, x[None])[0]) for i, x in enumerate(xs)]
    return [_numpy(r, dtype) for r in _capture(net, passes, batch_size, mode)]


@dataclass
class Drawn:
    """One input's neighbourhood as drawn, before any forward pass: ``x`` the encoded input;
    ``noise`` for audio the ``(M, N)`` noisy waveforms (float32), for text the ``(M, T, E)``
    shifts ``std * noise`` (float32) added to the embedding layer's output."""

    x: torch.Tensor
    noise: torch.Tensor


def draw_neighbourhood(net: HFNetwork, sample, neighbourhood, rng: np.random.Generator, where: str = "sample") -> Drawn:
    """Draw one sample's neighbourhood from ``rng`` exactly as the one-at-a-time ``_with_neighbourhood``
    does (the same draws, shapes and arithmetic): audio, ``x + std * N(0, 1)^(M, N)`` in float64,
    then float32; text, ``std * N(0, 1)^(M, T, E)`` in float32, ``E`` the embedding output's width.

    A caller that interleaves other draws (the other network's neighbourhood, the positions)
    draws in its own order with this and runs the passes batched with :func:`capture_drawn`."""
    m, std = int(neighbourhood.size), neighbourhood.std
    if m < 1:
        raise EquivtestError(f"a neighbourhood needs at least one point, got size {m}")
    if not np.isfinite(std):
        raise EquivtestError(f"{where}: the neighbourhood's delta {neighbourhood.delta!r} is not finite; give a finite delta")
    x = sample if isinstance(sample, torch.Tensor) else net.encode(sample, where)
    if net.modality == "audio":
        noisy = x.numpy()[None].astype(np.float64) + std * rng.standard_normal((m, x.numel()))
        return Drawn(x, torch.as_tensor(noisy, dtype=torch.float32))
    width = getattr(net._embedding, "embedding_dim", None)
    if width is None:  # not an nn.Embedding: its output tells
        width = net.embed(x[None]).shape[-1]
    return Drawn(x, std * torch.as_tensor(rng.standard_normal((m, len(x), int(width))), dtype=torch.float32))


def _neighbour_passes(net: HFNetwork, item: int, drawn: Drawn, batch_size: int) -> list:
    """The forward passes of one drawn neighbourhood: audio through the front end ``batch_size``
    waveforms at a time (as the one-at-a-time path feeds them), text the input with its shifts."""
    if net.modality == "text":
        return [_Pass(item, drawn.x, shift) for shift in drawn.noise]
    values = []
    for s in range(0, len(drawn.noise), int(batch_size)):
        values.extend(_model_inputs(net, drawn.noise[s : s + int(batch_size)]))
    return [_Pass(item, v) for v in values]


def capture_drawn(net: HFNetwork, drawn: Sequence[Drawn], batch_size: int = 50, *, padding: str = "auto",
                  dtype=np.float64) -> list:
    """Per drawn neighbourhood ``(sequence (T_i, f), neighbours (M, T_i, f))``: the inputs' and all
    neighbours' passes sorted by length and run in padded batches across inputs (see
    :func:`capture_neighbourhoods`)."""
    mode = padding_mode(net, padding)
    passes = []
    for i, d in enumerate(drawn):
        passes.append(_Pass(i, _model_inputs(net, d.x[None])[0]))
        passes.extend(_neighbour_passes(net, i, d, batch_size))
    rows = _capture(net, passes, batch_size, mode)
    out, k = [], 0
    for d in drawn:
        m = len(d.noise)
        out.append((_numpy(rows[k], dtype), _numpy(torch.stack(rows[k + 1 : k + m + 1]), dtype)))
        k += m + 1
    return out


def capture_neighbours(net: HFNetwork, drawn: Sequence[Drawn], batch_size: int = 50, *, padding: str = "auto",
                       dtype=np.float64) -> list:
    """Per drawn neighbourhood its neighbours' rows ``(M, T_i, f)`` only, the passes of all of them
    sorted by length and run in padded batches across inputs (the inputs' own rows:
    :func:`capture_encoded`)."""
    mode = padding_mode(net, padding)
    passes = [p for i, d in enumerate(drawn) for p in _neighbour_passes(net, i, d, batch_size)]
    rows = _capture(net, passes, batch_size, mode)
    out, k = [], 0
    for d in drawn:
        out.append(_numpy(torch.stack(rows[k : k + len(d.noise)]), dtype))
        k += len(d.noise)
    return out


def capture_neighbourhoods(net: HFNetwork, inputs: Sequence, neighbourhood, rng: np.random.Generator,
                           batch_size: int = 50, *, padding: str = "auto", window: int | None = None,
                           dtype=np.float64) -> list:
    """Per input ``(sequence (T_i, f), neighbours (M, T_i, f))``, the neighbourhood passes batched
    across inputs.

    The noise is drawn from ``rng`` input by input, in input order, with the shapes and the
    arithmetic of the one-at-a-time path (``_with_neighbourhood``; see
    :func:`draw_neighbourhood`): text, a ``(M, T, E)`` standard normal per input added (times
    ``neighbourhood.std``, in float32) to the embedding layer's output; audio, a ``(M, N)``
    standard normal per input added (in float64) to the waveform. So for the same ``rng``
    the rows equal those of calling ``_with_neighbourhood`` on each input in turn, to
    float32 rounding, and ``rng`` is left in the same state; calling this on consecutive
    chunks of the inputs gives the same as one call. (``fit_hf`` interleaves the two
    networks' draws and the positions' in one ``rng``; to reproduce that order, draw with
    :func:`draw_neighbourhood` in that order and capture with :func:`capture_drawn`.)

    The inputs are taken ``window`` at a time (default: enough inputs for 16 batches of
    passes, at least one); the noise of one window is held in memory (float32, the size of
    its neighbours' waveforms, or embedding outputs for text), and its sample and
    neighbour passes are sorted by length and batched together.
    """
    padding_mode(net, padding)  # a bad value is refused before any work
    m = int(neighbourhood.size)
    per_window = int(window) if window is not None else max(1, (16 * int(batch_size)) // (m + 1))
    if per_window < 1:
        raise EquivtestError(f"window must be a positive number of inputs, got {window}")
    xs = _encode_all(net, inputs, "inputs")
    out = []
    for start in range(0, len(xs), per_window):
        drawn = [draw_neighbourhood(net, x, neighbourhood, rng) for x in xs[start : start + per_window]]
        out.extend(capture_drawn(net, drawn, batch_size, padding=padding, dtype=dtype))
    return out


def _batchable(net: HFNetwork) -> bool:
    """Whether ``net``'s answers can come from one batched pass: the default arg-max of the
    logits, or greedy CTC (:func:`~equivtest.adapters.hf.ctc_greedy`)."""
    return net.predict is None or getattr(net.predict, "ctc", None) is not None


def _replacement(replace, item: int, seq: torch.Tensor, net: HFNetwork) -> torch.Tensor:
    new = replace(item, seq) if callable(replace) else replace[item]
    new = torch.as_tensor(np.asarray(new) if not isinstance(new, torch.Tensor) else new)
    if new.ndim == 2:
        new = new[None]
    if tuple(new.shape) != tuple(seq.shape):
        raise EquivtestError(f"the replacement of input {item}'s output of layer {net.layer!r} has shape "
                             f"{tuple(new.shape)} where the layer gave {tuple(seq.shape)} (1, positions, all features); "
                             "give every position and every feature of the layer")
    return new.to(seq.device, seq.dtype)


def answers(net: HFNetwork, inputs: Sequence, replace: Callable | Sequence | None = None, batch_size: int = 32, *,
            padding: str = "auto") -> list:
    """The network's answer per input, in input order, from length-sorted padded batches.

    ``replace`` rewrites the layer's output on the way (the stitched network): a callable
    ``replace(i, seq) -> seq`` given input ``i``'s output ``(1, T_i, F)`` (its real positions,
    all features, batch-sequence-feature order, as :meth:`HFNetwork.answer` gives it), or
    a sequence of per-input arrays ``(T_i, F)``. Padding positions are left as they are.

    Batched: the default answer (arg-max of 2-d ``logits``; -1 for an input whose logits
    are not all finite) and greedy CTC
    (``predict=ctc_greedy(...)``), decoded over each input's own frames. Any other
    ``predict`` (e.g. an encoder-decoder's greedy decoding) cannot be batched here and
    runs one input at a time through :meth:`HFNetwork.answer`, with the same ``replace``.
    """
    mode = padding_mode(net, padding)
    xs = _encode_all(net, inputs, "inputs")
    if replace is not None and not callable(replace) and len(replace) != len(xs):
        raise EquivtestError(f"replace gives {len(replace)} replacements for {len(xs)} inputs; give one per input")
    if not _batchable(net):
        return [net.answer(x, replace=None if replace is None else (lambda seq, i=i: _replacement(replace, i, seq, net)))
                for i, x in enumerate(xs)]
    passes = [_Pass(i, _model_inputs(net, x[None])[0]) for i, x in enumerate(xs)]
    found = [None] * len(passes)
    for batch, group in _batches(net, passes, batch_size, mode):
        handles = []
        if replace is not None:
            def hook(_m, _i, out, batch=batch):
                seq = _layer_bsf(net, out, batch)
                new = seq.clone()
                for b, (p, span) in enumerate(zip(batch.passes, _spans(batch, seq.shape[1]))):
                    new[b : b + 1, span] = _replacement(replace, p.item, seq[b : b + 1, span], net)
                return put_output(out, net.output, net._native(new))
            handles.append(net._layer.register_forward_hook(hook))
        try:
            with eval_mode(net.model), torch.no_grad():
                logits = net.model(**batch.kwargs).logits
        finally:
            for handle in handles:
                handle.remove()
        for b, answer in enumerate(_decode(net, logits, batch)):
            found[group[b]] = answer
    return found


def _decode(net: HFNetwork, logits: torch.Tensor, batch: _Batch) -> list:
    if net.predict is None:
        if logits.ndim != 2:
            raise EquivtestError(f"{net.name} gives logits of shape {tuple(logits.shape)}; the default answer is the "
                                 "arg-max of (batch, classes) logits, so give predict= for this model "
                                 "(e.g. predict=ctc_greedy(vocabulary) for a CTC model)")
        finite = torch.isfinite(logits).all(-1).tolist()
        # NaN or inf logits: no answer (-1), which agrees with nothing, as HFNetwork.answer gives it
        return [int(k) if ok else -1 for k, ok in zip(logits.argmax(-1).tolist(), finite)]
    vocab, blank, delimiter = net.predict.ctc
    frames = logits.argmax(-1).cpu()
    if batch.lengths is None:
        counts = [frames.shape[1]] * len(frames)
    else:
        if frames.shape[1] != batch.expected:
            raise ActivationError(f"{net.name} gave {frames.shape[1]} frames of logits for a padded batch whose lengths "
                                  f"predict {batch.expected}; batch inputs of equal length only (padding='equal_lengths')")
        counts = batch.lengths
    return [ctc_collapse(frames[b, : int(t)].tolist(), vocab, blank, delimiter)[0] for b, t in enumerate(counts)]
