"""The networks of experiment 1: tanh MLPs learning f(x) = -x^2 on [-1, 0].

Network A is 1-1-1 (``fc1 -> act1 -> out``), network B is 1-8-8-8-1
(``fc1 -> act1 -> fc2 -> act2 -> fc3 -> act3 -> out``). Both train in float64 with
Adam on MSE (learning rates 1e-3 and 1e-4, as in the thesis) on 10,240 uniform
draws from [-1, 0], with early stopping on 512 validation draws (patience 10).
The thesis used batches of 1; here batches of 128 keep training to seconds on a CPU.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np
import torch
from torch import nn

from equivtest._threads import torch_threads
from .cache import cached_network

TRAIN_SIZE, VAL_SIZE = 10_240, 512


def target_function(x):
    return -(x**2)


def build_mlp(widths: list[int]) -> nn.Sequential:
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, (w_in, w_out) in enumerate(zip(widths[:-2], widths[1:-1]), start=1):
        layers[f"fc{i}"] = nn.Linear(w_in, w_out)
        layers[f"act{i}"] = nn.Tanh()
    layers["out"] = nn.Linear(widths[-2], widths[-1])
    return nn.Sequential(layers).double()


def _train(model: nn.Module, lr: float, seed: int, max_epochs: int, batch_size: int, patience: int) -> dict:
    # Tiny matrices: one thread is faster than several spinning on a busy machine, and
    # the result does not depend on the machine's core count.
    with torch_threads(1):
        return _train_loop(model, lr, seed, max_epochs, batch_size, patience)


def _train_loop(model: nn.Module, lr: float, seed: int, max_epochs: int, batch_size: int, patience: int) -> dict:
    rng = np.random.default_rng(seed)
    x_train = rng.uniform(-1.0, 0.0, size=(TRAIN_SIZE, 1))
    x_val = rng.uniform(-1.0, 0.0, size=(VAL_SIZE, 1))
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(target_function(x_train))
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(target_function(x_val))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    best, best_state, stale, epoch = float("inf"), None, 0, 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        for idx in torch.randperm(TRAIN_SIZE, generator=gen).split(batch_size):
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            val = float(loss_fn(model(xv), yv))
        if val < best:
            best, stale = val, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    with torch.no_grad():
        train_loss = float(loss_fn(model(xt), yt))
    return {"epochs": epoch, "train_mse": train_loss, "val_mse": best}


NETWORKS = {
    "a": {"widths": [1, 1, 1], "lr": 1e-3, "seed": 1},
    "b": {"widths": [1, 8, 8, 8, 1], "lr": 1e-4, "seed": 2},
}


def one_d_networks(
    max_epochs: int = 200, batch_size: int = 128, patience: int = 10, log: Callable[[str], None] | None = None
) -> tuple[nn.Sequential, nn.Sequential, dict]:
    """Train (or load from the cache) networks A and B; returns both and their summaries."""
    out, summaries = [], {}
    for label, spec in NETWORKS.items():
        config = {**spec, "max_epochs": max_epochs, "batch_size": batch_size, "patience": patience,
                  "train_size": TRAIN_SIZE, "val_size": VAL_SIZE, "dtype": "float64"}

        def build(spec=spec):
            torch.manual_seed(spec["seed"])
            return build_mlp(spec["widths"])

        def train(model, spec=spec):
            return _train(model, spec["lr"], spec["seed"], max_epochs, batch_size, patience)

        model, summary = cached_network(f"1d-{label}", config, build, train, log=log)
        out.append(model)
        summaries[label] = summary
    return out[0], out[1], summaries
