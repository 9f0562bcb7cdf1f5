"""A suite for the CLI's tests, found through a test-made ``equivtest.suites`` entry point.

Two tiny float64 tanh MLPs (1 -> 8 -> 1), the second a neuron permutation of the first,
so they are exactly equivalent at ``act1``; a fit takes about a second.
"""

from __future__ import annotations

import numpy as np

import equivtest

from ._nets import permuted_copy, tanh_mlp

NAME = "tiny"
TITLE = "Tiny: a tanh MLP vs. a neuron permutation of it"
THRESHOLDS = {"activation_mse": 1e-6}
CONFIG = equivtest.FitConfig(n_eigenvectors=3)


def pair(log=None) -> equivtest.NetworkPair:
    a = tanh_mlp(0, widths=(1, 8, 1))
    b = permuted_copy(a, "fc1", "out", np.random.default_rng(0).permutation(8))
    return equivtest.NetworkPair(a, b, "act1", "act1", name=NAME, names=("mlp", "mlp-permuted"))


def sampler(n_samples: int = 256, neighbourhood_size: int = 128, delta: float = 0.05, seed: int = 0) -> equivtest.Sampler:
    return equivtest.Sampler(
        equivtest.GridPoints(-1.0, 1.0, n_samples),
        equivtest.GaussianNeighbourhood(neighbourhood_size, delta, convention="std"),
        seed=seed,
    )


def test_inputs() -> np.ndarray:
    return np.linspace(-0.9, 0.9, 101)[:, None]
