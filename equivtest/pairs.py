"""NetworkPair: the two networks under test, where to read them, and how their rows pair."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import EquivtestError
from .layers import LayerSpec
from .networks import TASKS, TorchNetwork


def _is_hf(net) -> bool:
    """An :class:`equivtest.adapters.hf.HFNetwork` (or a subclass), known without importing transformers."""
    return any(c.__name__ == "HFNetwork" and c.__module__ == "equivtest.adapters.hf.network" for c in type(net).__mro__)


@dataclass
class NetworkPair:
    """Two networks and the layers whose activation spaces are compared.

    ``a`` and ``b`` are torch modules (then ``layer_a``/``layer_b`` name the layers, a
    module path or a :class:`LayerSpec`) or :class:`equivtest.adapters.hf.HFNetwork`s
    (which carry their layer). ``domain_map`` maps inputs of A's domain to B's (identity
    when ``None``). ``task`` picks the output criterion: ``"regression"`` (output MSE),
    ``"classification"`` (agreement of the arg-max class) or ``"transcription"``
    (agreement and word agreement of transcripts); the default is regression for torch
    modules and classification for transformers models. ``pairing`` says how rows pair:
    :class:`equivtest.pairing.Samples` for torch modules (the default),
    :class:`equivtest.adapters.hf.Positions` for transformers models (the default:
    64 positions per input, trimmed to the shorter sequence). ``output_a``/``output_b``
    pick the network's output where ``forward`` returns a dict or a tuple.
    ``intrinsic_dim`` is the dimension d of the input manifold for the Whitney
    criterion; ``None`` estimates it. ``device`` (e.g. ``"cuda"``) moves both networks
    there (torch modules and transformers models alike), in place.
    """

    a: Any
    b: Any
    layer_a: "str | LayerSpec | None" = None
    layer_b: "str | LayerSpec | None" = None
    name: str = "pair"
    names: tuple[str, str] = ("a", "b")
    domain_map: Callable | None = None
    task: str | None = None
    intrinsic_dim: int | None = None
    metadata: dict = field(default_factory=dict)
    device: "str | None" = None
    pairing: Any = None
    output_a: Any = None
    output_b: Any = None

    def __post_init__(self):
        kinds = {side: "hf" if _is_hf(net) else "torch" for side, net in (("a", self.a), ("b", self.b))}
        if len(set(kinds.values())) != 1:
            raise EquivtestError("both networks of a pair must be of one kind: two torch modules, or two HFNetworks")
        self.kind = kinds["a"]
        if len(self.names) != 2 or self.names[0] == self.names[1]:
            raise EquivtestError(f"names must be two distinct labels, got {self.names!r}")
        self.names = tuple(self.names)
        if self.task is None:
            self.task = "regression" if self.kind == "torch" else "classification"
        allowed = TASKS[:2] if self.kind == "torch" else TASKS[1:]
        if self.task not in allowed:
            raise EquivtestError(f"task must be one of {allowed} for {'torch modules' if self.kind == 'torch' else 'transformers models'}, got {self.task!r}")
        if self.kind == "torch":
            self._torch_sides()
            if self.pairing is None:
                from .pairing import Samples

                self.pairing = Samples()
        else:
            if self.layer_a is not None or self.layer_b is not None:
                raise EquivtestError("an HFNetwork carries its own layer (HFNetwork(model, layer, ...)); drop layer_a/layer_b")
            self._sides = {"a": self.a, "b": self.b}
            if self.pairing is None:
                from .adapters.hf.pairing import Positions

                self.pairing = Positions()
        for attr in ("describe", "capture", "test_rows", "stitch", "directions", "paired", "activation_mse", "data_key"):
            if not callable(getattr(self.pairing, attr, None)):
                raise EquivtestError(f"pairing {self.pairing!r} has no {attr}(); use equivtest.pairing.Samples() "
                                     "or equivtest.adapters.hf.Positions(...)")
        if self.device is not None:
            self._move_to_device()

    def _torch_sides(self) -> None:
        from torch import nn

        sides = {}
        for side, net, layer, output in (("a", self.a, self.layer_a, self.output_a), ("b", self.b, self.layer_b, self.output_b)):
            if isinstance(net, TorchNetwork):
                sides[side] = net
                continue
            if not isinstance(net, nn.Module):
                raise TypeError(f"network {side} must be a torch.nn.Module or an equivtest.adapters.hf.HFNetwork, "
                                f"got {type(net).__name__}")
            if layer is None:
                raise EquivtestError(f"name the layer of network {side}: NetworkPair(a, b, layer_a='...', layer_b='...')")
            label = self.names[0 if side == "a" else 1]
            sides[side] = TorchNetwork(net, LayerSpec.of(layer), name=label, output=output)
        self._sides = sides
        self.layer_a, self.layer_b = sides["a"].layer, sides["b"].layer

    def _move_to_device(self) -> None:
        """Both networks' modules (a torch module, a transformers model) to ``device``, in place."""
        import torch

        try:
            device = torch.device(self.device)
            for side in self._sides.values():
                (side.module if isinstance(side, TorchNetwork) else side.model).to(device)
        except (RuntimeError, AssertionError) as exc:
            raise EquivtestError(
                f"cannot move the networks to device {self.device!r} ({exc}); "
                "use a device torch can see, e.g. 'cpu' or 'cuda' with torch.cuda.is_available()"
            ) from None

    def side(self, side: str):
        """The :class:`~equivtest.networks.Network` of ``side`` ("a" or "b")."""
        return self._sides[side]

    def network(self, side: str):
        """The network object as given (a torch module, or an HFNetwork)."""
        return self.a if side == "a" else self.b

    def layer(self, side: str) -> LayerSpec:
        if self.kind != "torch":
            raise EquivtestError("an HFNetwork pair names its layers in each HFNetwork (pair.side(s).layer)")
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
            "kind": self.kind,
            "networks": {s: (type(self.network(s)).__name__ if self.kind == "torch" else self.side(s).describe())
                         for s in ("a", "b")},
            **({"layers": {s: self.layer(s).describe() for s in ("a", "b")}} if self.kind == "torch" else {}),
            "task": self.task,
            "pairing": self.pairing.describe(),
            "domain_map": None if self.domain_map is None else getattr(self.domain_map, "__name__", "custom"),
            "intrinsic_dim": self.intrinsic_dim,
            "device": None if self.device is None else str(self.device),
            **({"metadata": self.metadata} if self.metadata else {}),
        }
