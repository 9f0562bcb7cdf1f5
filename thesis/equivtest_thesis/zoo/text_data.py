"""Pang-Lee sentence polarity (rt-polarity v1.0): the text suites' English sentiment corpus.

The package ships all 10,662 sentences in ``thesis/equivtest_thesis/data/sentence_polarity.json.gz``
(built by ``thesis/tools/make_sentiment_subset.py``; source Pang and Lee 2005, CC BY 4.0).
Labels are the data set's own (1 positive, 0 negative). :func:`polarity_splits` shuffles
each class with a fixed seed and cuts balanced, disjoint test, validation and training
splits, so the test set's class balance is 50/50 by construction.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

POLARITY_FILE = "sentence_polarity.json.gz"


@lru_cache(maxsize=1)
def load_polarity() -> dict:
    """``{"pos": [...], "neg": [...], "source": ..., "licence": ..., "sha256": {...}}``."""
    blob = resources.files("equivtest_thesis.data").joinpath(POLARITY_FILE).read_bytes()
    return json.loads(gzip.decompress(blob))


@dataclass(frozen=True)
class TextSplit:
    sentences: tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.sentences)

    def positive_rate(self) -> float:
        return float(np.mean(self.labels))


def polarity_splits(seed: int = 0, n_test: int = 500, n_val: int = 300) -> tuple[TextSplit, TextSplit, TextSplit]:
    """Balanced (train, validation, test) splits: ``n_test`` and ``n_val`` sentences *per class*
    for test and validation, the rest for training; each split interleaved pos/neg then shuffled."""
    data = load_polarity()
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for label, key in ((1, "pos"), (0, "neg")):
        items = list(data[key])
        order = rng.permutation(len(items))
        cut = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
        for name, idx in cut.items():
            parts[name] += [(items[i], label) for i in idx]
    out = []
    for name in ("train", "val", "test"):
        rows = parts[name]
        order = rng.permutation(len(rows))
        out.append(TextSplit(tuple(rows[i][0] for i in order), np.array([rows[i][1] for i in order], dtype=np.int64)))
    return tuple(out)
