"""The TransformerAE report's merger: two CNNs' weights in, the weights of a CNN on the union out.

Architecture (report section 4.1 and its parameter summary, Figure 5), scaled down:

- **tokens**: one token per output neuron: its incoming weights and its bias (a conv
  filter of 8x3x3 plus bias = 73 values; a dense row of 64 plus bias = 65). The report's
  ``EmbedderNeuronGroup`` embeds tokens of each size with its own linear layer; so does
  :class:`WeightEncoder` (one ``Linear(token_size, d_model)`` per layer). The digit CNN
  gives 8 + 8 + 4 + 20 + 10 = 50 tokens (the report's ``max_seq_len`` is 50 as well).
- **two encoders** (``EncoderNeuronGroup``): embedding, sinusoidal positional encoding
  (scaled by sqrt(d_model), as in the report's ``PositionalEncoder``), ``n_layers``
  pre-norm transformer encoder layers, a final LayerNorm; the sequence is averaged into
  one code of ``d_model`` values per network.
- **neck**: ``Linear(2 d_model, neck)`` on the concatenated codes, then tanh (in the
  report 1920 -> 512 with d_model 960).
- **decoder** (``DecoderNeuronGroup``): ``Neck2Seq``, one ``Linear(neck, d_model)`` per
  token position, positional encoding, ``n_layers`` transformer layers, LayerNorm, then
  a linear head per layer from each token back to its neuron's weights and bias. The
  report's ``Seq2Vec`` is one dense layer from the whole sequence to the flat vector
  (118 M parameters); with tens to hundreds of training triples here, per-token heads
  (the mirror of the embedder) keep the decoder small.
- **skip** (optional, ``skip=True``): the decoder's output is added to the mean of the
  two parents' weights, so the network learns a correction to weight averaging. Not in
  the report; the merge suite reports the merger with and without it.

Loss: the report's layer-wise normalised MSE, ``sum_l 1/|Theta_l| ||(w_hat_l - w_l)/s_l||^2``
(:func:`equivtest.weights.layerwise_mse` with ``scales``), where ``s_l`` is the standard
deviation of layer l's weights over the training targets; inputs and outputs are
standardised by the same ``s_l``. Optimiser AdamW, gradients clipped to norm 1 (as in the
report's Algorithm 1), the pair order swapped at random as augmentation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from equivtest._threads import torch_threads
from equivtest.weights.errors import WeightSpaceError
from equivtest.weights.flat import FlatIndex


@dataclass(frozen=True)
class MergerConfig:
    d_model: int = 64
    n_layers: int = 2
    heads: int = 4
    d_ff: int = 128
    neck: int = 128
    dropout: float = 0.07
    skip: bool = True
    epochs: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0


class NeuronTokens:
    """Maps a flat weight vector to per-neuron tokens and back, from a :class:`FlatIndex`.

    Each module with a ``weight`` of shape ``(n_out, ...)`` and a ``bias`` of ``(n_out,)``
    gives ``n_out`` tokens of ``prod(weight.shape[1:]) + 1`` values."""

    def __init__(self, index: FlatIndex):
        by_layer: dict[str, dict] = {}
        for s in index.slices:
            by_layer.setdefault(s.layer, {})[s.name.rsplit(".", 1)[-1]] = s
        self.layers, order = [], []
        for layer, parts in by_layer.items():
            if set(parts) != {"weight", "bias"}:
                raise WeightSpaceError(f"layer {layer!r} needs a weight and a bias to form neuron tokens, has {sorted(parts)}")
            w, b = parts["weight"], parts["bias"]
            n_out, fan_in = w.shape[0], math.prod(w.shape[1:])
            pos = np.empty((n_out, fan_in + 1), dtype=np.int64)
            pos[:, :fan_in] = w.start + np.arange(n_out * fan_in).reshape(n_out, fan_in)
            pos[:, fan_in] = b.start + np.arange(n_out)
            self.layers.append((layer, n_out, fan_in + 1, w.start, b.stop))
            order.append(pos.reshape(-1))
        self.size = index.size
        self.token_order = torch.as_tensor(np.concatenate(order))  # token-order position -> flat position
        if sorted(self.token_order.tolist()) != list(range(self.size)):
            raise WeightSpaceError("the neuron tokens do not cover the flat vector exactly once")
        self.flat_order = torch.argsort(self.token_order)  # flat position -> token-order position
        self.n_tokens = sum(n for _, n, _, _, _ in self.layers)

    def to_tokens(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """``(B, P)`` -> per layer ``(B, n_out, token_size)``."""
        t = flat[:, self.token_order]
        out, at = [], 0
        for _, n, size, _, _ in self.layers:
            out.append(t[:, at:at + n * size].reshape(len(flat), n, size))
            at += n * size
        return out

    def to_flat(self, tokens: list[torch.Tensor]) -> torch.Tensor:
        t = torch.cat([x.reshape(len(x), -1) for x in tokens], dim=1)
        return t[:, self.flat_order]


def positional_encoding(length: int, d_model: int) -> torch.Tensor:
    pe = torch.zeros(length, d_model)
    position = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    return pe


def _encoder_stack(cfg: MergerConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, cfg.d_ff, cfg.dropout, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, cfg.n_layers, enable_nested_tensor=False)


class WeightEncoder(nn.Module):
    """Per-layer token embedding, positional encoding, transformer layers, mean over tokens."""

    def __init__(self, tokens: NeuronTokens, cfg: MergerConfig):
        super().__init__()
        self.tokens = tokens
        self.embed = nn.ModuleList(nn.Linear(size, cfg.d_model) for _, _, size, _, _ in tokens.layers)
        self.register_buffer("pe", positional_encoding(tokens.n_tokens, cfg.d_model), persistent=False)
        self.scale = math.sqrt(cfg.d_model)
        self.layers = _encoder_stack(cfg)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, flat: torch.Tensor) -> torch.Tensor:
        seq = torch.cat([emb(t) for emb, t in zip(self.embed, self.tokens.to_tokens(flat))], dim=1)
        seq = seq * self.scale + self.pe
        return self.norm(self.layers(seq)).mean(dim=1)


class WeightDecoder(nn.Module):
    """Neck2Seq (one linear map per token), positional encoding, transformer layers, per-layer heads."""

    def __init__(self, tokens: NeuronTokens, cfg: MergerConfig):
        super().__init__()
        self.tokens, self.d_model = tokens, cfg.d_model
        self.neck2seq = nn.Linear(cfg.neck, tokens.n_tokens * cfg.d_model)  # = n_tokens linear maps, batched
        self.register_buffer("pe", positional_encoding(tokens.n_tokens, cfg.d_model), persistent=False)
        self.scale = math.sqrt(cfg.d_model)
        self.layers = _encoder_stack(cfg)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.heads = nn.ModuleList(nn.Linear(cfg.d_model, size) for _, _, size, _, _ in tokens.layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        seq = self.neck2seq(z).reshape(len(z), self.tokens.n_tokens, self.d_model) * self.scale + self.pe
        seq = self.norm(self.layers(seq))
        out, at = [], 0
        for head, (_, n, _, _, _) in zip(self.heads, self.tokens.layers):
            out.append(head(seq[:, at:at + n]))
            at += n
        return self.tokens.to_flat(out)


class TransformerMerger(nn.Module):
    """Decoder(tanh(Dense(Encoder1(w1) || Encoder2(w2)))) [+ (w1 + w2)/2 with ``skip``], in standardised units."""

    def __init__(self, index: FlatIndex, cfg: MergerConfig, scales: torch.Tensor):
        super().__init__()
        self.cfg, self.index = cfg, index
        tokens = NeuronTokens(index)
        self.encoder1, self.encoder2 = WeightEncoder(tokens, cfg), WeightEncoder(tokens, cfg)
        self.neck = nn.Linear(2 * cfg.d_model, cfg.neck)
        self.decoder = WeightDecoder(tokens, cfg)
        self.register_buffer("scales", scales.float())  # per flat entry: its layer's std

    def forward(self, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        """Raw flat vectors (B, P) in, predicted raw flat vectors out."""
        x1, x2 = w1 / self.scales, w2 / self.scales
        z = torch.tanh(self.neck(torch.cat([self.encoder1(x1), self.encoder2(x2)], dim=1)))
        out = self.decoder(z)
        if self.cfg.skip:
            out = out + 0.5 * (x1 + x2)
        return out * self.scales


def layer_scales(targets: torch.Tensor, index: FlatIndex) -> tuple[torch.Tensor, list[float]]:
    """Per flat entry, the std of its layer's weights over ``targets`` (B, P); and the per-layer list."""
    per_entry = torch.empty(index.size)
    per_layer = []
    for _, (lo, hi) in index.layers().items():
        s = float(targets[:, lo:hi].std())
        s = s if s > 0 else 1.0
        per_entry[lo:hi] = s
        per_layer.append(s)
    return per_entry, per_layer


def layerwise_loss(pred: torch.Tensor, target: torch.Tensor, index: FlatIndex, scales: torch.Tensor) -> torch.Tensor:
    """The report's layer-wise normalised MSE, batch-averaged: sum_l mean_l(((pred - target)/s)^2)."""
    err = ((pred - target) / scales) ** 2
    return sum(err[:, lo:hi].mean() for lo, hi in index.layers().values())


def new_merger(target: torch.Tensor, index: FlatIndex, cfg: MergerConfig) -> TransformerMerger:
    """An untrained merger whose layer scales come from the training targets (seeded by ``cfg.seed``)."""
    torch.manual_seed(cfg.seed)
    return TransformerMerger(index, cfg, layer_scales(target, index)[0])


def train_merger(w1: torch.Tensor, w2: torch.Tensor, target: torch.Tensor, index: FlatIndex,
                 cfg: MergerConfig = MergerConfig(), stage=None,
                 model: TransformerMerger | None = None) -> tuple[TransformerMerger, dict]:
    """Train on triples ``(w1[i], w2[i]) -> target[i]`` (float tensors (B, P)); one thread, deterministic.

    ``model`` (from :func:`new_merger`) is trained in place; by default a new one."""
    if not (w1.shape == w2.shape == target.shape) or w1.ndim != 2 or w1.shape[1] != index.size:
        raise WeightSpaceError(f"triples must be three (B, {index.size}) tensors, got "
                               f"{tuple(w1.shape)}, {tuple(w2.shape)}, {tuple(target.shape)}")
    with torch_threads(1):
        per_layer = layer_scales(target, index)[1]
        if model is None:
            model = new_merger(target, index, cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
        gen = torch.Generator().manual_seed(cfg.seed)
        n, history = len(target), []
        for epoch in range(cfg.epochs):
            model.train()
            total = 0.0
            for idx in torch.randperm(n, generator=gen).split(cfg.batch_size):
                swap = torch.rand(len(idx), 1, generator=gen) < 0.5
                a = torch.where(swap, w2[idx], w1[idx])
                b = torch.where(swap, w1[idx], w2[idx])
                loss = layerwise_loss(model(a, b), target[idx], index, model.scales)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                total += float(loss.detach()) * len(idx)
            sched.step()
            history.append(total / n)
            if stage and (epoch + 1) % max(1, cfg.epochs // 5) == 0:
                stage(f"merger epoch {epoch + 1}/{cfg.epochs}: layer-wise loss {history[-1]:.4f}")
        model.eval()
    return model, {"config": asdict(cfg), "loss_history": history, "layer_scales": per_layer,
                   "n_triples": n, "n_parameters": sum(p.numel() for p in model.parameters())}


def predict(model: TransformerMerger, w1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """Predicted flat weights for parents ``w1``, ``w2`` (1-D or batched)."""
    single = w1.ndim == 1
    with torch.no_grad():
        out = model(w1.reshape(1, -1) if single else w1, w2.reshape(1, -1) if single else w2)
    return out[0] if single else out


def cached_merger(w1: torch.Tensor, w2: torch.Tensor, target: torch.Tensor, index: FlatIndex,
                  cfg: MergerConfig = MergerConfig(), stage=None) -> tuple[TransformerMerger, dict]:
    """:func:`train_merger`, cached like the zoo (safetensors + JSON in ``$EQUIVTEST_CACHE``),
    keyed by the configuration and a SHA-256 of the training triples themselves."""
    import hashlib
    import json

    from ..zoo.cache import cached_network

    digest = hashlib.sha256()
    for t in (w1, w2, target):
        digest.update(t.detach().float().contiguous().numpy().tobytes())
    digest.update(json.dumps(index.to_dict(), sort_keys=True).encode())
    config = {"merger": asdict(cfg), "triples_sha256": digest.hexdigest(), "n_triples": len(target), "version": 1}

    def train(model):
        return train_merger(w1, w2, target, index, cfg, stage=stage, model=model)[1]

    return cached_network("merge-merger", config, lambda: new_merger(target, index, cfg), train, log=stage)
