"""Small networks and their exact re-parametrisations, shared by the property tests."""

from __future__ import annotations

import copy
from collections import OrderedDict

import numpy as np
import torch
from torch import nn


def tanh_mlp(seed: int, widths=(1, 8, 8, 1)) -> nn.Sequential:
    """fc1 -> act1 -> fc2 -> act2 -> ... -> out, float64, seeded."""
    torch.manual_seed(seed)
    layers: "OrderedDict[str, nn.Module]" = OrderedDict()
    for i, (w_in, w_out) in enumerate(zip(widths[:-2], widths[1:-1]), start=1):
        layers[f"fc{i}"] = nn.Linear(w_in, w_out)
        layers[f"act{i}"] = nn.Tanh()
    layers["out"] = nn.Linear(widths[-2], widths[-1])
    return nn.Sequential(layers).double().eval()


def linear_bottleneck(seed: int, width: int = 6) -> nn.Sequential:
    """fc1 -> act1 -> code (linear, the layer to compare) -> out: rotations of ``code`` are exact."""
    torch.manual_seed(seed)
    return nn.Sequential(
        OrderedDict(fc1=nn.Linear(1, width), act1=nn.Tanh(), code=nn.Linear(width, width), out=nn.Linear(width, 1))
    ).double().eval()


def permuted_copy(model: nn.Sequential, before: str, after: str, perm: np.ndarray) -> nn.Sequential:
    """Permute the neurons between linear layers ``before`` and ``after``; outputs are unchanged."""
    twin = copy.deepcopy(model)
    p = torch.as_tensor(perm)
    with torch.no_grad():
        lin_in, lin_out = getattr(twin, before), getattr(twin, after)
        lin_in.weight.copy_(lin_in.weight[p])
        lin_in.bias.copy_(lin_in.bias[p])
        lin_out.weight.copy_(lin_out.weight[:, p])
    return twin


def rotated_copy(model: nn.Sequential, layer: str, nxt: str, q: np.ndarray) -> nn.Sequential:
    """Rotate the output of linear ``layer`` by Q and undo it in linear ``nxt``; outputs are unchanged."""
    twin = copy.deepcopy(model)
    qt = torch.as_tensor(q)
    with torch.no_grad():
        lin, lin_next = getattr(twin, layer), getattr(twin, nxt)
        lin.weight.copy_(qt @ lin.weight)
        lin.bias.copy_(qt @ lin.bias)
        lin_next.weight.copy_(lin_next.weight @ qt.T)
    return twin


def random_orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    return q * np.sign(np.diag(r))


def small_mlp(seed: int) -> nn.Sequential:
    """fc1 (1 -> 8) -> act1 -> fc2 (8 -> 1), float64, seeded."""
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict(fc1=nn.Linear(1, 8), act1=nn.Tanh(), fc2=nn.Linear(8, 1))).double()
