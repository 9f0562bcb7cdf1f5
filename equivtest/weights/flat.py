"""A torch module's parameters as one flat vector, with an index back to the layers.

``flatten_parameters(net)`` concatenates ``net.named_parameters()`` in their
registration order (each tensor flattened row-major, as ``tensor.reshape(-1)``) and
returns the vector with a :class:`FlatIndex`: for each parameter its name, shape and
``[start, stop)`` slice of the vector. ``load_flat(net, vector)`` is the inverse. The
index is plain data (``to_dict``/``from_dict``) so a zoo can store it as JSON beside
its safetensors checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import WeightSpaceError


@dataclass(frozen=True)
class ParamSlice:
    """One parameter tensor's place in the flat vector: ``vector[start:stop]``."""

    name: str
    shape: tuple[int, ...]
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start

    @property
    def layer(self) -> str:
        """The owning module's path (``"conv1"`` for ``"conv1.weight"``)."""
        return self.name.rsplit(".", 1)[0] if "." in self.name else self.name


@dataclass(frozen=True)
class FlatIndex:
    """Where each parameter tensor sits in a flat weight vector."""

    slices: tuple[ParamSlice, ...]

    @property
    def size(self) -> int:
        return self.slices[-1].stop if self.slices else 0

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.slices]

    def layers(self) -> dict[str, tuple[int, int]]:
        """Module path -> ``(start, stop)``: a layer's weight and bias together.

        Parameters of one module are contiguous when they are registered together,
        which ``named_parameters`` guarantees for a module's own parameters."""
        out: dict[str, list[int]] = {}
        for s in self.slices:
            if s.layer in out and out[s.layer][1] != s.start:
                raise WeightSpaceError(f"parameters of {s.layer!r} are not contiguous in the flat vector")
            lo, hi = out.get(s.layer, [s.start, s.start])
            out[s.layer] = [lo, s.stop]
        return {k: (v[0], v[1]) for k, v in out.items()}

    def segments(self, by: str = "layer") -> list[tuple[str, int, int]]:
        """``[(name, start, stop)]`` per module (``by="layer"``) or per tensor (``by="tensor"``)."""
        if by == "layer":
            return [(k, a, b) for k, (a, b) in self.layers().items()]
        if by == "tensor":
            return [(s.name, s.start, s.stop) for s in self.slices]
        raise WeightSpaceError(f"segments(by=...) must be 'layer' or 'tensor', got {by!r}")

    def split(self, vector) -> dict:
        """Parameter name -> the slice of ``vector`` reshaped to the parameter's shape."""
        if len(vector) != self.size:
            raise WeightSpaceError(
                f"the vector has {len(vector)} entries but the index describes {self.size}; "
                "flatten the same architecture the index was made from"
            )
        return {s.name: vector[s.start:s.stop].reshape(s.shape) for s in self.slices}

    def to_dict(self) -> dict:
        return {"size": self.size, "slices": [
            {"name": s.name, "shape": list(s.shape), "start": s.start, "stop": s.stop} for s in self.slices]}

    @classmethod
    def from_dict(cls, data: dict) -> "FlatIndex":
        slices = tuple(ParamSlice(d["name"], tuple(d["shape"]), int(d["start"]), int(d["stop"])) for d in data["slices"])
        index = cls(slices)
        position = 0
        for s in slices:
            if s.start != position or s.stop - s.start != math.prod(s.shape):
                raise WeightSpaceError(f"flat index entry {s.name!r} is inconsistent (start {s.start}, "
                                       f"stop {s.stop}, shape {s.shape}); rebuild it with flat_index(net)")
            position = s.stop
        return index


def flat_index(module) -> FlatIndex:
    """The :class:`FlatIndex` of ``module.named_parameters()``."""
    slices, position = [], 0
    for name, p in module.named_parameters():
        n = p.numel()
        slices.append(ParamSlice(name, tuple(p.shape), position, position + n))
        position += n
    if not slices:
        raise WeightSpaceError(f"{type(module).__name__} has no parameters to flatten")
    return FlatIndex(tuple(slices))


def flatten_parameters(module):
    """``(vector, index)``: the parameters as one detached 1-D torch tensor, and its index."""
    import torch

    index = flat_index(module)
    vector = torch.cat([p.detach().reshape(-1) for p in module.parameters()])
    return vector, index


def load_flat(module, vector, index: FlatIndex | None = None):
    """Copy a flat vector into ``module``'s parameters (the inverse of :func:`flatten_parameters`).

    ``index`` (optional) is checked against the module: names and shapes must match.
    Returns the module."""
    import torch

    own = flat_index(module)
    if index is not None and [(s.name, s.shape) for s in index.slices] != [(s.name, s.shape) for s in own.slices]:
        raise WeightSpaceError(
            "the flat index does not describe this module (parameter names or shapes differ); "
            "load the vector into the architecture it was flattened from"
        )
    v = torch.as_tensor(np.asarray(vector) if not isinstance(vector, torch.Tensor) else vector)
    if v.ndim != 1 or v.numel() != own.size:
        raise WeightSpaceError(
            f"expected a 1-D vector of {own.size} entries for {type(module).__name__}, got shape {tuple(v.shape)}"
        )
    if not torch.isfinite(v).all():
        raise WeightSpaceError("the flat vector contains NaN or inf; refuse to load it into the network")
    with torch.no_grad():
        for (name, p), s in zip(module.named_parameters(), own.slices):
            p.copy_(v[s.start:s.stop].reshape(s.shape).to(dtype=p.dtype, device=p.device))
    return module
