"""The stitched network (step 9): A up to its layer, the transformation, B after its layer."""

from __future__ import annotations

from typing import Callable

import numpy as np
from torch import nn

from .capture import capture, resolve_layer
from .errors import EquivtestError
from .layers import LayerSpec
from .transform import Transformation

TARGET_INPUTS = ("real", "zeros")


class StitchedNetwork:
    """Callable ``x -> output of the target network`` through the transformation.

    ``to`` names the target network ("b": A is the source, B the target). The target
    network still needs an input for the layers before the replaced one (their values
    are overwritten); ``target_input="real"`` feeds it the real input mapped by
    ``domain_map``, ``"zeros"`` a zero tensor of the same shape.
    """

    def __init__(
        self,
        source: nn.Module,
        target: nn.Module,
        source_layer: "str | LayerSpec",
        target_layer: "str | LayerSpec",
        transformation: Transformation,
        to: str,
        *,
        domain_map: Callable | None = None,
        target_input: str = "real",
        batch_size: int = 8192,
    ):
        if target_input not in TARGET_INPUTS:
            raise EquivtestError(f"target_input must be one of {TARGET_INPUTS}, got {target_input!r}")
        self.source, self.target = source, target
        self.source_layer, self.target_layer = LayerSpec.of(source_layer), LayerSpec.of(target_layer)
        resolve_layer(source, self.source_layer.path)
        resolve_layer(target, self.target_layer.path)
        self.transformation, self.to = transformation, transformation.side(to)
        self.domain_map, self.target_input, self.batch_size = domain_map, target_input, batch_size

    def __call__(self, inputs, source_activations: np.ndarray | None = None) -> np.ndarray:
        """Target outputs for ``inputs``; ``source_activations`` (as :func:`capture` returns
        them for these inputs) skips capturing the source again."""
        acts = source_activations
        if acts is None:
            acts = capture(self.source, inputs, self.source_layer, batch_size=self.batch_size)
        predicted = self.transformation.predict(acts, to=self.to)
        x = np.asarray(inputs)
        if self.domain_map is not None:
            x = np.asarray(self.domain_map(x))
        if self.target_input == "zeros":
            x = np.zeros_like(x)
        return self._run_target(x, predicted)

    def _run_target(self, x: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        from .networks import TorchNetwork

        target = TorchNetwork(self.target, self.target_layer, name="target", batch_size=self.batch_size)
        return target.run(x, rows=predicted)
