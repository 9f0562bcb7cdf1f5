"""Hugging Face networks: variable-length audio and token inputs (thesis sections 3.2.3,
3.2.4, 3.3.3 and experiments 3 to 5).

A :class:`HFNetwork` is a transformers model (an object, a hub id or a local directory
saved with ``save_pretrained``) plus where to read it:

- ``layer``: a module path such as ``"wav2vec2.encoder.layers.11"`` or
  ``"transformer.layer.1"``; tuple outputs and ``BaseModelOutput``s give their item
  ``output`` (default 0);
- ``features``: how many equidistant features of that layer to keep (the thesis keeps
  24 of 768), or explicit indices;
- ``modality``: ``"audio"`` (a 1-d waveform per sample) or ``"text"`` (a string, turned
  into token ids by ``tokenizer``).

Every sample keeps its own length (samples are lists, not arrays). For each sample the
layer's output is a sequence of T positions; positions are rows. :func:`fit_hf` draws
``positions`` of them at random (the thesis: 64) per sample, the same ones in the
sample and in each of its neighbours, and treats every position as one sample of the
transformation. When the two networks give different lengths for one sample, the longer
sequence is trimmed to the shorter (``align="trim"``, the thesis) or the shorter is
padded with its per-feature mean over positions (``align="pad"``); the stitched network
does the same to the transformed sequence against the target's own length.

Neighbourhoods: for audio, Gaussian points around the waveform (variance delta/4 by the
thesis's convention). For text, which is discrete, they are drawn in the output space
of the embedding layer (``embedding``, by default the module that
``model.get_input_embeddings()`` returns): the sample's embedding output plus Gaussian
noise, put in place of the embedding output by a forward hook, for samples and
neighbours alike. The two networks' embedding spaces differ, so each network gets its
own neighbourhoods; nothing guarantees that a diffeomorphism between the two sets of
neighbourhoods exists (the thesis's caveat, section 3.2.4).

Cross-domain pairs: ``HFPair(domain_map=f)`` maps a sample of A's domain to B's (e.g.
the ASR network's transcript of the audio becomes B's text sample). Stitching then only
runs from A into B.

The target network of a stitched network still needs an input for the layers before the
replaced one: ``target_input="real"`` (default) gives it the real input, ``"dummy"`` a
zero waveform or a sequence of ``dummy_token_id`` of the same length. The thesis could
only reach its figures with the real input, because its models reuse the input after
the replaced layer (attention masks, positions, and the sequence length the replaced
output must have); results with the real input should be read in that light. With a
dummy the length still comes from the real input.
"""

from __future__ import annotations

import difflib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..capture import eval_mode, model_device, model_dtype
from ..criteria import EquivalenceResult, criterion
from ..engine import FitConfig
from ..errors import ActivationError, EquivtestError, LayerNotFoundError
from ..layers import fill_unpredicted
from ..sampling import GaussianNeighbourhood

MODALITIES = ("audio", "text")
ALIGNMENTS = ("trim", "pad", "resample")
TARGET_INPUTS = ("real", "dummy")
TASKS = ("classification", "transcription")
# model types whose hidden states run (sequence, batch, feature); all others (batch, sequence, feature)
SEQUENCE_FIRST = {"xlnet"}


class _Stop(Exception):
    """Ends a forward pass once the layer has run."""


# -- loading ----------------------------------------------------------------------------
def load_model(source, model_class=None, **kwargs) -> nn.Module:
    """A transformers model from an object (returned as is), a local directory or a hub id.

    ``model_class`` is a transformers class or its name (default ``AutoModel``). A local
    directory must hold what ``save_pretrained`` wrote (``config.json`` and weights).
    """
    if isinstance(source, nn.Module):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"a network is a torch.nn.Module, a hub id or a directory path, got {type(source).__name__}")
    import transformers

    cls = model_class or transformers.AutoModel
    if isinstance(cls, str):
        cls = getattr(transformers, cls)
    path = Path(source)
    if path.exists():
        if not (path.is_dir() and (path / "config.json").exists()):
            raise EquivtestError(
                f"{str(source)!r} is not a model directory (no config.json in it); give a directory written by "
                "model.save_pretrained(...) or a hub id"
            )
        return cls.from_pretrained(str(path), **kwargs)
    try:
        return cls.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EquivtestError(
            f"cannot load {str(source)!r} as a hub id ({first}). If the model hub is not reachable from here, "
            "download the model where it is, save it with save_pretrained(DIR) and give DIR instead of the id"
        ) from None


def load_tokenizer(source) -> Callable[[str], list[int]]:
    """A tokenizer (``AutoTokenizer``) from a local directory or hub id, as ``text -> ids``."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as exc:
        raise EquivtestError(f"cannot load a tokenizer from {str(source)!r} ({type(exc).__name__}); "
                             "save one there with tokenizer.save_pretrained(DIR)") from None
    return tok


def equidistant(n_features: int, count: int) -> np.ndarray:
    """``count`` equidistant indices out of ``n_features`` (24 of 768: 0, 32, ..., 736)."""
    if not 1 <= int(count) <= int(n_features):
        raise EquivtestError(f"cannot select {count} equidistant features out of {n_features}; "
                             f"ask for between 1 and {n_features}")
    return np.floor(np.arange(int(count)) * n_features / int(count)).astype(int)


def _module_path(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise EquivtestError("the embedding module is not part of the model")


def _resolve(model: nn.Module, path: str, what: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.4)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"it has {', '.join(map(repr, names[:12]))} ..."
        raise LayerNotFoundError(
            f"{type(model).__name__} has no {what} {path!r}; {hint} (module paths as in model.named_modules())"
        ) from None


def _pick(output, index, path: str) -> torch.Tensor:
    """The tensor of a layer's output: itself, an item of a tuple, or of a ModelOutput."""
    if isinstance(output, torch.Tensor):
        return output
    from transformers.utils import ModelOutput

    key = 0 if index is None else index
    if isinstance(output, ModelOutput):
        picked = output[key] if isinstance(key, str) else output.to_tuple()[key]
    elif isinstance(output, (tuple, list)):
        picked = output[key]
    else:
        picked = None
    if not isinstance(picked, torch.Tensor):
        raise ActivationError(f"layer {path!r} returned {type(output).__name__} whose item {key!r} is not a tensor; "
                              "choose the item with output=INDEX or output='name'")
    return picked


def _put(output, index, new: torch.Tensor):
    """``output`` with the picked tensor replaced by ``new``."""
    if isinstance(output, torch.Tensor):
        return new
    from transformers.utils import ModelOutput

    key = 0 if index is None else index
    if isinstance(output, ModelOutput):
        copy = output.__class__(**output)
        name = key if isinstance(key, str) else list(output.keys())[key]
        copy[name] = new
        return copy
    items = list(output)
    items[key] = new
    return type(output)(items)


# -- one network -----------------------------------------------------------------------
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
        self._layer = _resolve(self.model, self.layer, "layer")
        if self.modality == "text":
            if self.tokenizer is None and isinstance(source, (str, os.PathLike)):
                self.tokenizer = source
            if isinstance(self.tokenizer, (str, os.PathLike)):
                self.tokenizer = load_tokenizer(self.tokenizer)
            if self.tokenizer is None:
                raise EquivtestError(f"text network {self.name!r} needs tokenizer= (a callable text -> token ids, "
                                     "or a directory with a saved tokenizer)")
            if self.embedding is None:
                self.embedding = _module_path(self.model, self.model.get_input_embeddings())
            self._embedding = _resolve(self.model, self.embedding, "embedding layer")
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
            box["emb"] = _pick(out, 0, self.embedding).detach()
            raise _Stop

        handle = self._embedding.register_forward_hook(hook)
        try:
            with eval_mode(self.model), torch.no_grad():
                try:
                    self.model(**self.kwargs(ids))
                except _Stop:
                    pass
        finally:
            handle.remove()
        if "emb" not in box:
            raise ActivationError(f"embedding layer {self.embedding!r} did not run in a forward pass")
        return self._bsf(box["emb"]) if box["emb"].ndim == 3 else box["emb"]

    def sequences(self, x: torch.Tensor, embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Selected features of the layer for a batch of equal-length inputs: ``(B, T, f)`` float64.

        ``embeddings`` (``(B, T, E)``), if given, replace the embedding layer's output.
        """
        box = {}

        def layer_hook(_m, _i, out):
            seq = self._bsf(_pick(out, self.output, self.layer))
            box["seq"] = seq[..., self.feature_index(seq.shape[-1])].detach().to("cpu", torch.float64)
            raise _Stop

        handles = [self._layer.register_forward_hook(layer_hook)]
        if embeddings is not None:
            def emb_hook(_m, _i, out):
                new = self._native(embeddings.to(model_device(self.model), _pick(out, 0, self.embedding).dtype))
                return _put(out, 0, new)
            handles.append(self._embedding.register_forward_hook(emb_hook))
        try:
            with eval_mode(self.model), torch.no_grad():
                try:
                    self.model(**self.kwargs(x))
                except _Stop:
                    pass
        finally:
            for h in handles:
                h.remove()
        if "seq" not in box:
            raise ActivationError(f"layer {self.layer!r} did not run in a forward pass of {self.name}")
        return box["seq"]

    def answer(self, x: torch.Tensor, replace: Callable | None = None):
        """The network's prediction for one input (batch of one); ``replace(tensor_bsf) -> tensor_bsf``
        rewrites the layer's output on the way (the stitched network)."""
        handle = None
        if replace is not None:
            def hook(_m, _i, out):
                seq = self._bsf(_pick(out, self.output, self.layer))
                return _put(out, self.output, self._native(replace(seq)))
            handle = self._layer.register_forward_hook(hook)
        try:
            with eval_mode(self.model), torch.no_grad():
                kw = self.kwargs(x[None])
                if self.predict is not None:
                    return self.predict(self.model, kw)
                return int(self.model(**kw).logits.argmax(-1)[0])
        finally:
            if handle is not None:
                handle.remove()

    def describe(self) -> dict:
        index = None if self._index is None else self._index.tolist()
        return {"name": self.name, "class": type(self.model).__name__, "layer": self.layer, "output": self.output,
                "modality": self.modality, "features": index, "embedding": self.embedding,
                "sequence_first": self.sequence_first}


def ctc_greedy(vocabulary: Sequence[str], blank: int = 0, word_delimiter: str = "|") -> Callable:
    """``predict`` for a CTC model: arg-max per frame, repeats merged, blanks dropped."""
    vocab = list(vocabulary)

    def predict(model, kwargs) -> str:
        ids = model(**kwargs).logits.argmax(-1)[0].tolist()
        out, previous = [], None
        for i in ids:
            if i != previous and i != blank:
                out.append(vocab[i])
            previous = i
        return " ".join("".join(out).replace(word_delimiter, " ").split())

    return predict


# -- pairs and fits ---------------------------------------------------------------------
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
    """How samples become rows: neighbourhoods, positions per sample, length alignment."""

    neighbourhood: GaussianNeighbourhood = GaussianNeighbourhood(100, 0.05)
    positions: int | tuple = 64
    align: str = "trim"
    seed: int = 0
    batch_size: int = 50

    def __post_init__(self):
        if self.align not in ALIGNMENTS:
            raise EquivtestError(f"align must be one of {ALIGNMENTS}, got {self.align!r}")
        if isinstance(self.positions, (int, np.integer)) and int(self.positions) < 1:
            raise EquivtestError(f"positions must be a positive count or a list of positions, got {self.positions}")

    def describe(self) -> dict:
        nb = self.neighbourhood
        return {"neighbourhood": {"kind": type(nb).__name__, "size": nb.size, "delta": nb.delta,
                                  "convention": nb.convention},
                "positions": self.positions if isinstance(self.positions, int) else list(self.positions),
                "align": self.align, "seed": self.seed}


def select_positions(length: int, positions, rng: np.random.Generator, where: str = "the sequence") -> np.ndarray:
    """At most ``positions`` random positions of ``range(length)`` (sorted), or the explicit list checked."""
    if isinstance(positions, (int, np.integer)):
        return np.sort(rng.choice(length, size=min(int(positions), length), replace=False))
    index = np.asarray(positions, dtype=int).reshape(-1)
    if index.size == 0:
        raise EquivtestError("positions is an empty list; give a count (e.g. 64) or at least one position")
    bad = index[(index < 0) | (index >= length)]
    if bad.size:
        raise EquivtestError(
            f"sequence position(s) {sorted(set(bad.tolist()))} requested beyond the length {length} of {where}; "
            f"positions must lie in 0..{length - 1} (the length after aligning the two networks), "
            "or give a count such as positions=64 to draw at most that many at random"
        )
    return index


def align_length(seq: np.ndarray, length: int, mode: str = "trim") -> np.ndarray:
    """``seq`` (``(..., T, f)``) brought to ``length`` positions.

    ``"trim"``/``"pad"`` (the thesis): cut the end off, or append the per-feature mean over
    positions. ``"resample"``: position j takes the nearest of the proportional positions
    ``j (T - 1) / (length - 1)``, so the first and last positions meet (e.g. [CLS] ... [SEP]
    against ... <sep> <cls>) and the ones between keep their relative place.
    """
    t = seq.shape[-2]
    if mode == "resample":
        if t == length:
            return seq
        index = np.rint(np.linspace(0, t - 1, length)).astype(int) if length > 1 else np.array([t - 1])
        return seq[..., index, :]
    if t >= length:
        return seq[..., :length, :]
    mean = seq.mean(axis=-2, keepdims=True)
    pad = np.broadcast_to(mean, (*seq.shape[:-2], length - t, seq.shape[-1]))
    return np.concatenate([seq, pad], axis=-2)


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
        if self.pair.domain_map is None:
            yield "b", "a"

    def stitched_answers(self, inputs: Sequence, to: str, *, target_input: str = "real") -> dict:
        """Per input of A's domain: the target's own answer, the stitched answer, and activation errors."""
        if target_input not in TARGET_INPUTS:
            raise EquivtestError(f"target_input must be one of {TARGET_INPUTS}, got {target_input!r}")
        target = self.transformation.side(to)
        source = "a" if target == "b" else "b"
        if target == "a" and self.pair.domain_map is not None:
            raise EquivtestError("stitching into A needs the inverse of the domain map; this pair runs from A into B only")
        src, tgt = self.pair.network(source), self.pair.network(target)
        xs, xt, seqs = [], [], []
        for i, item in enumerate(inputs):
            xs.append(src.encode(self.pair.input_for(source, item), f"test input {i} ({src.name})"))
            xt.append(tgt.encode(self.pair.input_for(target, item), f"test input {i} ({tgt.name})"))
            seqs.append(src.sequences(xs[-1][None])[0].numpy())
        predicted = self.transformation.predict(np.concatenate(seqs), to=target)
        bounds = np.cumsum([0] + [len(s) for s in seqs])
        own, stitched, sq_err, n_err = [], [], 0.0, 0
        for i in range(len(xs)):
            pred = predicted[bounds[i] : bounds[i + 1]]
            true = tgt.sequences(xt[i][None])[0].numpy()
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
        result = EquivalenceResult(self.pair.name, found, {"n_test": len(test_inputs), "target_input": target_input})
        if thresholds:
            result = result.with_thresholds(thresholds)
        self.timings["evaluate_s"] = time.perf_counter() - t0
        return result


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word-level edit distance and the reference's word count."""
    r, h = reference.split(), hypothesis.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    errors = [word_errors(r, h) for r, h in zip(references, hypotheses)]
    return sum(e for e, _ in errors) / max(1, sum(n for _, n in errors))


def word_agreement(targets: Sequence[str], stitched: Sequence[str]) -> float:
    """1 - WER of the stitched transcripts against the target network's own (at least 0)."""
    return max(0.0, 1.0 - word_error_rate(targets, stitched))


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
