"""Experiment 1 of the thesis: two tanh MLPs that learned f(x) = -x^2 on [-1, 0].

Samples: 512 grid points on [-1, 1] (eq. 3.1), neighbourhoods of 1024 points, delta
0.05 (variance delta/4), 3 diffusion-map eigenvectors. Test: 1024 equidistant
points on [-1, 1] shifted by 5e-5, so at least half lie between the samples.
Layers: A's only tanh (``act1``), B's last tanh (``act3``).
The thresholds are the thesis's figures: output MSE of the stitched network against
the target network of 2.2e-8 (A to B) and 1.3e-7 (B to A).

Beside it, the ladder of maps (:func:`equivtest.runner.ladder_beside`) on the same 1024
test points, every rung of the default ladder (under a second): which map carries the layer
when the thesis's neighbourhoods are not used.
"""

from __future__ import annotations

import numpy as np

from equivtest.engine import FitConfig
from equivtest.pairs import NetworkPair
from equivtest.sampling import GaussianNeighbourhood, GridPoints, Sampler
from ..zoo.one_d import one_d_networks

NAME = "1d"
TITLE = "Experiment 1: 1-1-1 vs. 1-8-8-8-1 tanh MLPs on f(x) = -x^2"
THESIS = {"output_mse": {"a->b": 2.2e-8, "b->a": 1.3e-7}}
# A's only hidden layer is 1 wide, below Whitney's 2d+1 = 3: reported, not asserted
# (the thesis and Bertalan et al. use this pair because tanh(w x + b) is still injective).
THRESHOLDS = {
    "output_mse": THESIS["output_mse"],
    "activation_mse": 1e-6,
    "diffusion_residual": 1e-4,
    "whitney": {"a": None},
}
CONFIG = FitConfig(n_eigenvectors=3)


def pair(log=None) -> NetworkPair:
    a, b, summaries = one_d_networks(log=log)
    return NetworkPair(
        a, b, "act1", "act3", name=NAME, names=("mlp-1-1-1", "mlp-1-8-8-8-1"),
        task="regression", metadata={"training": summaries},
    )


def sampler(n_samples: int = 512, neighbourhood_size: int = 1024, delta: float = 0.05, seed: int = 0) -> Sampler:
    return Sampler(GridPoints(-1.0, 1.0, n_samples), GaussianNeighbourhood(neighbourhood_size, delta), seed=seed)


def test_inputs(n: int = 1024, shift: float = 5e-5) -> np.ndarray:
    return (-1.0 + np.arange(n) * 2.0 / n + shift)[:, None]


def ladder_inputs() -> np.ndarray:
    """The ladder's inputs: the suite's own test points (it holds out a quarter of them)."""
    return test_inputs()
