"""One transformers network: the layer to read, its inputs, its forward passes."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...capture import eval_mode, model_device, model_dtype, torch_row_dtype
from ...errors import ActivationError, EquivtestError
from .loading import StopForward, load_model, load_tokenizer, module_path, pick_output, put_output, resolve_module

MODALITIES = ("audio", "text")
# model types whose hidden states run (sequence, batch, feature); all others (batch, sequence, feature)
SEQUENCE_FIRST = {"xlnet"}
# text model types padded on the left in a batch: XLNet's attention is relative, so its real tokens
# keep their distances, and its sequence summary reads the last position. Every other text model
# is padded on the right, where absolute position ids (BERT, RoBERTa) stay those of the sentence alone.
PAD_LEFT = {"xlnet"}


def equidistant(n_features: int, count: int) -> np.ndarray:
    """``count`` equidistant indices out of ``n_features`` (24 of 768: 0, 32, ..., 736)."""
    if not 1 <= int(count) <= int(n_features):
        raise EquivtestError(f"cannot select {count} equidistant features out of {n_features}; "
                             f"ask for between 1 and {n_features}")
    return np.floor(np.arange(int(count)) * n_features / int(count)).astype(int)

@dataclass
class HFNetwork:
    """A transformers model, the layer to read and how its inputs look (see the module doc).

    ``predict(model, kwargs)`` turns one forward pass on a batch of one into the network's
    answer (a label, a transcript); the default is the arg-max of ``logits``.
    ``extra_inputs(batch_size)`` adds keyword arguments every forward pass needs (e.g.
    ``decoder_input_ids`` of an encoder-decoder). ``model`` and ``tokenizer`` may be a hub id
    or a local directory; a text model given that way loads its tokenizer from the same place.
    """

    model: Any
    layer: str
    modality: str
    features: int | Sequence[int] | None = None
    output: int | str | None = None
    tokenizer: Any = None
    embedding: str | None = None
    predict: Callable | None = None
    extra_inputs: Callable[[int], dict] | None = None
    input_name: str | None = None
    dummy_token_id: int = 0
    name: str | None = None
    model_class: Any = None
    sequence_first: bool | None = None

    def __post_init__(self):
        if self.modality not in MODALITIES:
            raise EquivtestError(f"modality must be one of {MODALITIES}, got {self.modality!r}")
        source = self.model
        self.model = load_model(self.model, self.model_class)
        self.model.eval()
        self.name = self.name or type(self.model).__name__
        self._layer = resolve_module(self.model, self.layer, "layer")
        if self.modality == "text":
            if self.tokenizer is None and isinstance(source, (str, os.PathLike)):
                self.tokenizer = source
            if isinstance(self.tokenizer, (str, os.PathLike)):
                self.tokenizer = load_tokenizer(self.tokenizer)
            if self.tokenizer is None:
                raise EquivtestError(f"text network {self.name!r} needs tokenizer= (a callable text -> token ids, "
                                     "or a directory with a saved tokenizer)")
            if self.embedding is None:
                self.embedding = module_path(self.model, self.model.get_input_embeddings())
            self._embedding = resolve_module(self.model, self.embedding, "embedding layer")
        self.input_name = self.input_name or ("input_values" if self.modality == "audio" else "input_ids")
        if self.sequence_first is None:
            self.sequence_first = getattr(getattr(self.model, "config", None), "model_type", None) in SEQUENCE_FIRST
        self._index = None

    # -- inputs ------------------------------------------------------------------------
    def encode(self, sample, where: str = "sample") -> torch.Tensor:
        """One sample as a 1-d tensor: a waveform (float) or token ids (long)."""
        if self.modality == "audio":
            x = np.asarray(sample, dtype=np.float32)
            if x.ndim != 1:
                raise EquivtestError(f"{where}: an audio sample is a 1-d waveform, got shape {x.shape}")
            if x.size == 0:
                raise EquivtestError(f"{where}: audio of zero length; every audio sample needs at least one value "
                                     "(and in practice enough for the network's feature encoder)")
            if not np.all(np.isfinite(x)):
                raise EquivtestError(f"{where}: the waveform contains NaN or inf values")
            return torch.from_numpy(x)
        if not isinstance(sample, str):
            raise EquivtestError(f"{where}: a text sample is a str, got {type(sample).__name__}")
        if not sample.strip():
            raise EquivtestError(f"{where}: empty text; every text sample needs at least one word")
        out = self.tokenizer(sample)
        ids = out if isinstance(out, (list, tuple, np.ndarray, torch.Tensor)) else out["input_ids"]
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long).reshape(-1)
        if ids.numel() == 0:
            raise EquivtestError(f"{where}: the tokenizer gave no tokens for {sample!r}")
        return ids

    def dummy(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x) if self.modality == "audio" else torch.full_like(x, int(self.dummy_token_id))

    def kwargs(self, x: torch.Tensor) -> dict:
        """Keyword arguments of a forward pass on a batch ``x`` of equal-length inputs."""
        if x.is_floating_point():
            x = x.to(model_dtype(self.model))
        kw = {self.input_name: x.to(model_device(self.model))}
        if self.extra_inputs is not None:
            kw.update(self.extra_inputs(int(x.shape[0])))
        return kw

    # -- layouts -----------------------------------------------------------------------
    def _bsf(self, t: torch.Tensor) -> torch.Tensor:
        if t.ndim != 3:
            raise ActivationError(f"layer {self.layer!r} gave a {t.ndim}-d output {tuple(t.shape)}; a sequence "
                                  "layer must give (batch, sequence, feature) or (sequence, batch, feature)")
        return t.transpose(0, 1) if self.sequence_first else t

    def _native(self, t: torch.Tensor) -> torch.Tensor:
        return t.transpose(0, 1) if self.sequence_first else t

    def feature_index(self, n_features: int) -> np.ndarray:
        if self._index is None or self._n_all != n_features:
            if self.features is None:
                index = np.arange(n_features)
            elif isinstance(self.features, (int, np.integer)):
                index = equidistant(n_features, int(self.features))
            else:
                index = np.asarray(self.features, dtype=int)
                if index.size == 0 or index.min() < 0 or index.max() >= n_features:
                    raise EquivtestError(f"features {index.tolist()} of layer {self.layer!r} must lie in 0..{n_features - 1}")
            self._index, self._n_all = index, n_features
        return self._index

    # -- forward passes ----------------------------------------------------------------
    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """The embedding layer's output for a batch of token ids, in (batch, sequence, feature) order."""
        box = {}

        def hook(_m, _i, out):
            box["emb"] = pick_output(out, 0, self.embedding).detach()
            raise StopForward

        self._forward_until_stop(ids, [self._embedding.register_forward_hook(hook)])
        if "emb" not in box:
            raise ActivationError(f"embedding layer {self.embedding!r} did not run in a forward pass")
        return self._bsf(box["emb"]) if box["emb"].ndim == 3 else box["emb"]

    def sequences(self, x: torch.Tensor, embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Selected features of the layer for a batch of equal-length inputs: ``(B, T, f)`` float64.

        ``embeddings`` (``(B, T, E)``), if given, replace the embedding layer's output.
        """
        box = {}

        def layer_hook(_m, _i, out):
            seq = self._bsf(pick_output(out, self.output, self.layer))
            box["seq"] = seq[..., self.feature_index(seq.shape[-1])].detach().to("cpu", torch.float64)
            raise StopForward

        handles = []
        if embeddings is not None:
            def emb_hook(_m, _i, out):
                new = self._native(embeddings.to(model_device(self.model), pick_output(out, 0, self.embedding).dtype))
                return put_output(out, 0, new)
            # registered first, so that a layer which is the embedding itself reads the replaced output
            handles.append(self._embedding.register_forward_hook(emb_hook))
        handles.append(self._layer.register_forward_hook(layer_hook))
        self._forward_until_stop(x, handles)
        if "seq" not in box:
            raise ActivationError(f"layer {self.layer!r} did not run in a forward pass of {self.name}")
        return box["seq"]

    def _forward_until_stop(self, x: torch.Tensor, handles: list) -> None:
        """One forward pass on ``x`` that a hook may end with ``StopForward``; the hooks are removed after."""
        self.run_until_stop(lambda: self.kwargs(x), handles)

    def run_until_stop(self, kwargs: Callable[[], dict], handles: list) -> None:
        """One forward pass on the keyword arguments ``kwargs()`` gives (built under ``no_grad``),
        which a hook may end with ``StopForward``; the hooks in ``handles`` are removed after."""
        try:
            with eval_mode(self.model), torch.no_grad():
                try:
                    self.model(**kwargs())
                except StopForward:
                    pass
        finally:
            for handle in handles:
                handle.remove()

    def answer(self, x: torch.Tensor, replace: Callable | None = None):
        """The network's prediction for one input (batch of one); ``replace(tensor_bsf) -> tensor_bsf``
        rewrites the layer's output on the way (the stitched network)."""
        handle = None
        if replace is not None:
            def hook(_m, _i, out):
                seq = self._bsf(pick_output(out, self.output, self.layer))
                return put_output(out, self.output, self._native(replace(seq)))
            handle = self._layer.register_forward_hook(hook)
        try:
            with eval_mode(self.model), torch.no_grad():
                kw = self.kwargs(x[None])
                if self.predict is not None:
                    return self.predict(self.model, kw)
                logits = self.model(**kw).logits[0]
                if not bool(torch.isfinite(logits).all()):
                    return -1  # NaN or inf logits: no answer, which agrees with nothing
                return int(logits.argmax(-1))
        finally:
            if handle is not None:
                handle.remove()

    def answers(self, outputs, task: str) -> list:
        """Answers are what :meth:`answer` gave (a class, -1 for non-finite logits, or a transcript)."""
        return list(outputs)

    def widths(self, sample) -> list[tuple[str, int]]:
        """Features per position of every leaf module's output up to the layer, in run order
        (for the Whitney criterion; a position is one row)."""
        x = self.encode(sample, "the Whitney check's example input")
        widths: list[tuple[str, int]] = []
        handles = []

        def make_hook(name, module):
            def hook(_m, _i, out):
                while isinstance(out, (tuple, list)) and out:
                    out = out[0]
                if isinstance(out, torch.Tensor) and out.is_floating_point() and out.ndim >= 2:
                    widths.append((name, int(out.shape[-1])))
                if module is self._layer:
                    raise StopForward
            return hook

        for name, module in self.model.named_modules():
            if module is self._layer or not any(True for _ in module.children()):
                handles.append(module.register_forward_hook(make_hook(name, module)))
        self._forward_until_stop(x[None], handles)
        return widths

    def describe(self) -> dict:
        index = None if self._index is None else self._index.tolist()
        return {"name": self.name, "class": type(self.model).__name__, "layer": self.layer, "output": self.output,
                "modality": self.modality, "features": index, "embedding": self.embedding,
                "sequence_first": self.sequence_first}

    # -- several layers at once (sweeps) -----------------------------------------------
    def at(self, layer: str) -> "HFNetwork":
        """The same network read at another ``layer`` (model and tokenizer shared, not copied)."""
        return dataclasses.replace(self, layer=layer)

    def capture_layers(self, inputs, layers: Sequence[str], batch_size: int = 32, *, padding: str = "auto",
                       dtype=None):
        """Every layer in ``layers`` from one forward pass per batch: ``(rows, groups, answers)``.

        ``rows[layer]`` holds the selected features of every real position of every input
        (inputs in order, in the model's precision, :func:`~equivtest.capture.row_dtype`:
        float32 for a float32 model; ``dtype`` asks for another), ``groups[layer]`` the input
        of each row, ``answers`` the network's answer per input from the same passes (as
        :func:`~.batching.answers` gives them). The batches are those of :func:`~.batching.capture_sequences` (length-sorted,
        padded with an attention mask, padding dropped); so each layer's rows equal those of
        ``self.at(layer)``'s capture to float32 rounding.
        """
        from ...networks import check_recorded, recording
        from .batching import _Pass, _batchable, _batches, _decode, _encode_all, _model_inputs, _spans, padding_mode
        from .batching import answers as batched_answers

        mode = padding_mode(self, padding)
        to = torch_row_dtype(self.model, dtype)
        xs = _encode_all(self, inputs, "inputs")
        passes = [_Pass(i, _model_inputs(self, x[None])[0]) for i, x in enumerate(xs)]
        modules = {layer: resolve_module(self.model, layer, "layer") for layer in layers}
        per_input = {layer: [None] * len(passes) for layer in layers}
        found = [None] * len(passes)
        batchable = _batchable(self)
        for batch, group in _batches(self, passes, batch_size, mode):
            watched = {layer: (module, lambda out, layer=layer: self._layer_rows(out, layer, batch).to(to))
                       for layer, module in modules.items()}
            with recording(watched) as kept, eval_mode(self.model), torch.no_grad():
                out = self.model(**batch.kwargs)
            check_recorded(kept, 1, self.name)
            for layer, (seq,) in kept.items():
                for b, span in enumerate(_spans(batch, seq.shape[1])):
                    per_input[layer][group[b]] = seq[b, span].numpy()
            if batchable:
                for b, answer in enumerate(_decode(self, out.logits, batch)):
                    found[group[b]] = answer
        if not batchable:  # answers decoded one input at a time (e.g. an encoder-decoder's generation)
            found = batched_answers(self, inputs, batch_size=batch_size, padding=padding)
        rows = {layer: np.concatenate(seqs) for layer, seqs in per_input.items()}
        groups = {layer: np.repeat(np.arange(len(xs)), [len(s) for s in seqs]) for layer, seqs in per_input.items()}
        return rows, groups, found

    def _layer_rows(self, out, layer: str, batch) -> torch.Tensor:
        """One batch's output of ``layer`` as (batch, positions, selected features), float32 on the CPU."""
        seq = self._bsf(pick_output(out, self.output, layer))
        if batch.expected is not None and seq.shape[1] != batch.expected:
            raise ActivationError(
                f"layer {layer!r} of {self.name} gave {seq.shape[1]} positions for a padded batch whose lengths predict "
                f"{batch.expected}; its positions cannot be matched to the inputs, so batch inputs of equal length "
                "only (padding='equal_lengths')")
        return seq[..., self.feature_index(seq.shape[-1])].detach().to("cpu")

    # -- padded batches (see batching.py) ----------------------------------------------
    @property
    def padding_side(self) -> str:
        """Where a padded batch puts the padding: ``"left"`` for XLNet text models (see
        :data:`PAD_LEFT`), ``"right"`` for every other model, audio always."""
        model_type = getattr(getattr(self.model, "config", None), "model_type", None)
        return "left" if self.modality == "text" and model_type in PAD_LEFT else "right"

    @property
    def pad_id(self) -> int:
        """The token id that fills the padding of a text batch: the tokenizer's ``pad_token_id``
        where it has one, else 0 (the attention mask hides those positions either way)."""
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return int(pad) if isinstance(pad, (int, np.integer)) else 0

    def layer_lengths(self, lengths) -> np.ndarray:
        """The number of the layer's positions for inputs of ``lengths`` (model-input positions:
        tokens, waveform samples, or filter-bank frames). Text keeps its length; audio goes
        through the model's ``_get_feat_extract_output_lengths`` (its convolutional front end)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if self.modality == "text":
            return lengths
        rule = getattr(self.model, "_get_feat_extract_output_lengths", None)
        if rule is None:
            raise EquivtestError(f"{self.name} ({type(self.model).__name__}) has no _get_feat_extract_output_lengths, "
                                 "so the positions of a padded input cannot be told from its padding; batch inputs "
                                 "of equal length only (padding='equal_lengths')")
        return np.asarray(torch.as_tensor(rule(torch.as_tensor(lengths))).reshape(-1), dtype=np.int64)
