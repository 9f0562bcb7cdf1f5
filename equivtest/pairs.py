"""NetworkPair: the two networks under test, where to read them, and how inputs relate."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from .capture import LayerSpec, resolve_layer
from .errors import EquivtestError

TASKS = ("regression", "classification")


@dataclass
class NetworkPair:
    """Two networks and the layers whose activation spaces are compared.

    ``domain_map`` maps inputs of A's domain to B's (identity when ``None``).
    ``task`` decides the downstream criterion: output MSE for ``"regression"``,
    agreement of the arg-max prediction for ``"classification"``.
    ``intrinsic_dim`` is the dimension d of the input manifold for the Whitney
    criterion; ``None`` estimates it from the samples. ``device`` (e.g. ``"cuda"``)
    moves both networks there; capture and stitching then run on it, and activations
    come back to the CPU in float64 for the fit.
    """

    a: nn.Module
    b: nn.Module
    layer_a: "str | LayerSpec"
    layer_b: "str | LayerSpec"
    name: str = "pair"
    names: tuple[str, str] = ("a", "b")
    domain_map: Callable | None = None
    task: str = "regression"
    intrinsic_dim: int | None = None
    metadata: dict = field(default_factory=dict)
    device: "str | None" = None

    def __post_init__(self):
        for label, net in (("a", self.a), ("b", self.b)):
            if not isinstance(net, nn.Module):
                raise TypeError(f"network {label} must be a torch.nn.Module, got {type(net).__name__}")
        self.layer_a, self.layer_b = LayerSpec.of(self.layer_a), LayerSpec.of(self.layer_b)
        resolve_layer(self.a, self.layer_a.path)
        resolve_layer(self.b, self.layer_b.path)
        if self.task not in TASKS:
            raise EquivtestError(f"task must be one of {TASKS}, got {self.task!r}")
        if len(self.names) != 2 or self.names[0] == self.names[1]:
            raise EquivtestError(f"names must be two distinct labels, got {self.names!r}")
        self.names = tuple(self.names)
        if self.device is not None:
            import torch

            try:
                device = torch.device(self.device)
                self.a.to(device)
                self.b.to(device)
            except (RuntimeError, AssertionError) as exc:
                raise EquivtestError(
                    f"cannot move the networks to device {self.device!r} ({exc}); "
                    "use a device torch can see, e.g. 'cpu' or 'cuda' with torch.cuda.is_available()"
                ) from None

    def network(self, side: str) -> nn.Module:
        return self.a if side == "a" else self.b

    def layer(self, side: str) -> LayerSpec:
        return self.layer_a if side == "a" else self.layer_b

    def inputs_for(self, side: str, inputs):
        """Inputs of A's domain as network ``side`` sees them."""
        if side == "b" and self.domain_map is not None:
            return self.domain_map(inputs)
        return inputs

    def describe(self) -> dict:
        return {
            "name": self.name,
            "names": list(self.names),
            "networks": {s: type(self.network(s)).__name__ for s in ("a", "b")},
            "layers": {s: self.layer(s).describe() for s in ("a", "b")},
            "task": self.task,
            "domain_map": None if self.domain_map is None else getattr(self.domain_map, "__name__", "custom"),
            "intrinsic_dim": self.intrinsic_dim,
            "device": None if self.device is None else str(self.device),
            **({"metadata": self.metadata} if self.metadata else {}),
        }
