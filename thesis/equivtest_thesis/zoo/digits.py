"""The digit model zoo of the merge suite: the TransformerAE report's CNN on class subsets.

Data: scikit-learn's bundled 8x8 handwritten digits (``sklearn.datasets.load_digits``,
1,797 images of 10 classes from the UCI optical recognition data set; it ships inside
scikit-learn, so nothing is downloaded or copied). Split per class with a fixed
permutation: 70% train, 30% test; pixels are divided by 16 and standardised with the
training mean and standard deviation.

Network (the report's Figure 2, adapted to 8x8 inputs): three 3x3 convolutions with
8, 8 and 4 channels (padding 1) and two dense layers, 4*4*4 -> 20 -> 10. The report's
input is 28x28 cut to 20x20 with a 2x2 max-pool after every convolution; an 8x8 image
takes one pool, after the first convolution, and reaches the same 4x4x4 feature map,
so the dense layers and the parameter count are the report's (2,466 here; the report
quotes 2,464). Activations ReLU. The report's listing also puts a ReLU on the logits;
that clips the logits of every class a network was not trained on to 0 and ties them,
so it is left out here. Initialisation Kaiming uniform (the zoo the report works with),
biases zero.

Training: Adam (lr 3e-3), batches of 32 (full batches only, reshuffled every epoch),
cross-entropy over all 10 logits on the training images of the network's class set, a
fixed number of epochs, one thread; networks of one seed whose data give the same
number of batches train together, vectorised (see :func:`train_group`). As in the
report, the initial weights depend only on the seed: every network of one seed starts
from the same point, whatever its classes, so networks of one seed are comparable
weight by weight. The shuffling depends on seed and classes. Trained networks are
cached as safetensors with a JSON summary that holds the flat index (which slice of
the flattened weight vector is which layer).
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from torch import nn

from equivtest._threads import torch_threads
from equivtest.errors import EquivtestError
from .cache import cached_network

N_CLASSES = 10
TRAIN_SHARE = 0.7
DATA_SEED = 0


class DigitCNN(nn.Sequential):
    """conv1 -> pool1 -> act1 -> conv2 -> act2 -> conv3 -> act3 -> flatten -> fc1 -> act4 -> fc2."""

    def __init__(self):
        super().__init__(OrderedDict([
            ("conv1", nn.Conv2d(1, 8, 3, padding=1)),
            ("pool1", nn.MaxPool2d(2, 2)),
            ("act1", nn.ReLU()),
            ("conv2", nn.Conv2d(8, 8, 3, padding=1)),
            ("act2", nn.ReLU()),
            ("conv3", nn.Conv2d(8, 4, 3, padding=1)),
            ("act3", nn.ReLU()),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(4 * 4 * 4, 20)),
            ("act4", nn.ReLU()),
            ("fc2", nn.Linear(20, N_CLASSES)),
        ]))


def initial_network(seed: int) -> DigitCNN:
    """The seed's starting point (Kaiming uniform weights, zero biases), the same for every class set."""
    gen = torch.Generator().manual_seed(int(seed))
    net = DigitCNN()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=gen)
                nn.init.zeros_(module.bias)
    return net


@dataclass(frozen=True)
class DigitData:
    x_train: torch.Tensor  # (n, 1, 8, 8) float32, standardised
    y_train: torch.Tensor  # (n,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor

    def subset(self, classes, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        x, y = (self.x_train, self.y_train) if split == "train" else (self.x_test, self.y_test)
        mask = torch.isin(y, torch.as_tensor(sorted(classes)))
        return x[mask], y[mask]


@lru_cache(maxsize=1)
def load_digit_data() -> DigitData:
    """scikit-learn's 8x8 digits, split 70/30 per class (fixed permutation), standardised."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images.astype(np.float64) / 16.0, digits.target.astype(np.int64)
    rng = np.random.default_rng(DATA_SEED)
    train_idx, test_idx = [], []
    for c in range(N_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == c))
        cut = int(round(TRAIN_SHARE * len(idx)))
        train_idx.extend(idx[:cut])
        test_idx.extend(idx[cut:])
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    mean, std = images[train_idx].mean(), images[train_idx].std()

    def prep(idx):
        x = torch.tensor((images[idx] - mean) / std, dtype=torch.float32)[:, None]
        return x, torch.tensor(labels[idx])

    return DigitData(*prep(train_idx), *prep(test_idx))


def check_classes(classes) -> tuple[int, ...]:
    out = tuple(sorted({int(c) for c in classes}))
    if len(out) < 2 or out[0] < 0 or out[-1] >= N_CLASSES:
        raise EquivtestError(
            f"a class set needs at least 2 distinct digits in 0..9, got {classes!r}; "
            "a network trained on one class only ever predicts it"
        )
    return out


def accuracy(net: nn.Module, classes, split: str = "test", data: DigitData | None = None) -> float:
    """Share of the ``split`` images of ``classes`` whose arg-max over all 10 logits is right."""
    x, y = (data or load_digit_data()).subset(check_classes(classes), split)
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(dim=1) == y).float().mean())


@torch_threads(1)
def train_steps(net: nn.Module, classes, *, epochs: float, lr: float, batch_size: int, seed: int,
                data: DigitData | None = None) -> dict:
    """Train ``net`` in place on the training images of ``classes`` for ``epochs`` epochs
    (a fraction gives that share of one epoch's batches); one thread, deterministic."""
    x, y = (data or load_digit_data()).subset(classes, "train")
    gen = torch.Generator().manual_seed(int(seed))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    n_batches_epoch = -(-len(y) // batch_size)
    total = int(round(epochs * n_batches_epoch))
    steps, last = 0, float("nan")
    try:
        net.train()
        while steps < total:
            for idx in torch.randperm(len(y), generator=gen).split(batch_size):
                if steps >= total:
                    break
                opt.zero_grad()
                loss = loss_fn(net(x[idx]), y[idx])
                loss.backward()
                opt.step()
                last, steps = float(loss.detach()), steps + 1
    finally:
        net.eval()
    return {"steps": steps, "batches_per_epoch": n_batches_epoch, "last_loss": last}


def _set_seed(classes) -> int:
    """A shuffling seed per class set (the initial weights depend on the zoo seed only)."""
    return sum((c + 1) * 11**i for i, c in enumerate(classes))


TRAINING = {"epochs": 30, "lr": 3e-3, "batch_size": 32}


def _config(classes, seed, epochs, lr, batch_size) -> dict:
    return {"classes": list(classes), "seed": int(seed), "epochs": int(epochs), "lr": lr,
            "batch_size": int(batch_size), "data": "sklearn-digits-8x8", "split": [TRAIN_SHARE, DATA_SEED],
            "init": "kaiming_uniform", "batches": "full batches only, reshuffled each epoch", "version": 2}


def _cache_name(classes, seed) -> str:
    return f"digits-cnn-s{int(seed)}-c{''.join(map(str, classes))}"


def train_group(class_sets, seed: int, *, epochs: int, lr: float, batch_size: int,
                data: DigitData | None = None) -> list[DigitCNN]:
    """Train one network per class set from the seed's initialisation, all at once.

    Each network sees its own data exactly as if trained alone: per epoch a fresh
    permutation of its training images (generator seeded by seed and classes), cut into
    ``floor(n / batch_size)`` full batches (the ragged rest is left out that epoch),
    one Adam step per batch. Networks whose class sets give the same number of batches
    share one vectorised forward and backward pass (``torch.func.vmap`` over stacked
    parameters; Adam is element-wise, so a stacked Adam is one Adam per network). A
    network trained in a different group agrees up to float rounding."""
    from torch.func import functional_call, stack_module_state, vmap

    data = data or load_digit_data()
    subsets = [data.subset(c, "train") for c in class_sets]
    steps = {len(y) // batch_size for _, y in subsets}
    if len(steps) != 1 or 0 in steps:
        raise EquivtestError(f"a training group needs class sets with the same number of full batches, got {steps}")
    n_steps = steps.pop()
    nets = [initial_network(seed) for _ in class_sets]
    params, buffers = stack_module_state(nets)
    template = initial_network(seed).to("meta")

    def forward(p, b, x):
        return functional_call(template, (p, b), (x,))

    gens = [torch.Generator().manual_seed(1000 * int(seed) + _set_seed(c)) for c in class_sets]
    opt = torch.optim.Adam(list(params.values()), lr=lr)
    with torch_threads(1):
        for _ in range(int(epochs)):
            order = [torch.randperm(len(y), generator=g)[: n_steps * batch_size] for (_, y), g in zip(subsets, gens)]
            xs = torch.stack([x[o] for (x, _), o in zip(subsets, order)])
            ys = torch.stack([y[o] for (_, y), o in zip(subsets, order)])
            for step in range(n_steps):
                sl = slice(step * batch_size, (step + 1) * batch_size)
                logits = vmap(forward)(params, buffers, xs[:, sl])
                per_net = nn.functional.cross_entropy(logits.reshape(-1, N_CLASSES), ys[:, sl].reshape(-1),
                                                      reduction="none").reshape(len(class_sets), -1).mean(dim=1)
                opt.zero_grad()
                per_net.sum().backward()
                opt.step()
    with torch.no_grad():
        for k, net in enumerate(nets):
            for name, p in net.named_parameters():
                p.copy_(params[name][k])
            net.eval()
    return nets


class _NotCached(Exception):
    pass


def _cached(classes, seed, epochs, lr, batch_size, trained: DigitCNN | None = None, log=None):
    """The cached network, or (with ``trained``) store that one; raises _NotCached when absent."""
    from equivtest.weights.flat import flat_index, flatten_parameters, load_flat

    config = _config(classes, seed, epochs, lr, batch_size)

    def store(net):
        if trained is None:
            raise _NotCached
        load_flat(net, flatten_parameters(trained)[0])
        return {**config, "test_accuracy": accuracy(net, classes), "train_accuracy": accuracy(net, classes, "train"),
                "flat_index": flat_index(net).to_dict()}

    return cached_network(_cache_name(classes, seed), config, lambda: initial_network(seed), store, log=log)


def digit_cnns(class_sets, seed: int, *, epochs: int = TRAINING["epochs"], lr: float = TRAINING["lr"],
               batch_size: int = TRAINING["batch_size"], log: Callable[[str], None] | None = None) -> list:
    """``[(net, summary)]`` for each class set, from the cache or trained (in groups) and cached."""
    class_sets = [check_classes(c) for c in class_sets]
    found, missing = {}, []
    for c in class_sets:
        try:
            found[c] = _cached(c, seed, epochs, lr, batch_size)
        except _NotCached:
            missing.append(c)
    if missing:
        data = load_digit_data()
        groups: dict[int, list] = {}
        for c in missing:
            groups.setdefault(len(data.subset(c, "train")[1]) // batch_size, []).append(c)
        for group in groups.values():
            if log:
                log(f"digit zoo: training {len(group)} CNNs of seed {seed} on {len(group[0])} classes together")
            for c, net in zip(group, train_group(group, seed, epochs=epochs, lr=lr, batch_size=batch_size, data=data)):
                found[c] = _cached(c, seed, epochs, lr, batch_size, trained=net)
    return [found[c] for c in class_sets]


def digit_cnn(classes, seed: int, **kwargs) -> tuple[DigitCNN, dict]:
    """The zoo's CNN for ``classes`` from the initialisation of ``seed``: trained, or loaded from the cache."""
    return digit_cnns([classes], seed, **kwargs)[0]


# ------------------------------------------------------------------------------ the zoo


@dataclass(frozen=True)
class ZooSpec:
    """Which networks the zoo holds.

    Parents are networks on the ``parent_sets`` (disjoint pairs of them form a merge
    task C1, C2 -> C1 u C2); per seed, ``n_train_pairs`` tasks train the merger and
    ``n_heldout`` other tasks, whose unions never appear as a training target, test it.
    """

    seeds: tuple[int, ...]
    parent_sets: tuple[tuple[int, ...], ...]
    n_train_pairs: int
    n_heldout: int
    epochs: int = TRAINING["epochs"]
    pair_seed: int = 0

    def tasks(self) -> tuple[list, list]:
        """``(train, heldout)``: lists of ``(C1, C2)`` pairs of disjoint parent sets."""
        pairs = [(a, b) for a, b in itertools.combinations(self.parent_sets, 2) if not set(a) & set(b)]
        order = np.random.default_rng(self.pair_seed).permutation(len(pairs))
        heldout, held_unions, train = [], set(), []
        for i in order:
            a, b = pairs[i]
            union = tuple(sorted(a + b))
            if len(heldout) < self.n_heldout:
                heldout.append((a, b))
                held_unions.add(union)
            elif union not in held_unions and len(train) < self.n_train_pairs:
                train.append((a, b))
        if len(heldout) < self.n_heldout or len(train) < self.n_train_pairs:
            raise EquivtestError(
                f"the parent sets give {len(pairs)} disjoint pairs, too few for {self.n_heldout} held-out and "
                f"{self.n_train_pairs} training tasks; add parent sets or ask for fewer tasks"
            )
        return train, heldout


ALL_PAIRS = tuple(itertools.combinations(range(N_CLASSES), 2))
# CI: 15 parent sets, each digit in three of them: (i, i+1 mod 10) and (i, i+5)
CI_PARENTS = tuple(sorted({tuple(sorted((i, (i + 1) % 10))) for i in range(10)} | {(i, i + 5) for i in range(5)}))
PROFILES = {
    "ci": ZooSpec(seeds=(0, 1), parent_sets=CI_PARENTS, n_train_pairs=20, n_heldout=5, epochs=20),
    "full": ZooSpec(seeds=(0, 1, 2), parent_sets=ALL_PAIRS, n_train_pairs=60, n_heldout=10, epochs=30),
}


@dataclass
class Zoo:
    spec: ZooSpec
    networks: dict = field(default_factory=dict)  # (seed, classes) -> DigitCNN
    summaries: dict = field(default_factory=dict)
    train_tasks: list = field(default_factory=list)
    heldout_tasks: list = field(default_factory=list)

    def vector(self, seed: int, classes) -> torch.Tensor:
        from equivtest.weights.flat import flatten_parameters

        return flatten_parameters(self.networks[(seed, check_classes(classes))])[0]

    def triples(self, tasks) -> list[tuple[int, tuple, tuple]]:
        return [(s, a, b) for s in self.spec.seeds for a, b in tasks]


def build_zoo(spec: ZooSpec | str = "ci", log: Callable[[str], None] | None = None) -> Zoo:
    """Train (or load) every network the spec names: for each seed, the parents of every
    task and the union of every task."""
    spec = PROFILES[spec] if isinstance(spec, str) else spec
    train, heldout = spec.tasks()
    needed = sorted({c for a, b in train + heldout for c in (a, b, tuple(sorted(a + b)))})
    zoo = Zoo(spec, train_tasks=train, heldout_tasks=heldout)
    for seed in spec.seeds:
        for classes, (net, summary) in zip(needed, digit_cnns(needed, seed, epochs=spec.epochs, log=log)):
            zoo.networks[(seed, classes)] = net
            zoo.summaries[(seed, classes)] = summary
    return zoo
