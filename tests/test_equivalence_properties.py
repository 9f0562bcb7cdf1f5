"""Properties of the whole method: re-parametrised copies of a network are equivalent.

A network is equivalent to itself, to a copy with the chosen layer's neurons
permuted and to a copy with the chosen (linear) layer rotated, each re-parametrised
so that its outputs are unchanged. A pair of unrelated networks is the positive
control that must fail the same tolerance.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equivtest import FitConfig, GaussianNeighbourhood, GridPoints, NetworkPair, Sampler, fit_pair
from tests._nets import linear_bottleneck, permuted_copy, random_orthogonal, rotated_copy, tanh_mlp

SAMPLER = Sampler(GridPoints(-1.0, 1.0, 128), GaussianNeighbourhood(128, 0.05), seed=0)
TEST_X = (-1.0 + np.arange(200) * 2.0 / 200 + 1e-3)[:, None]
CONFIG = FitConfig(n_eigenvectors=3)
# "Near zero", relative to the target's variance. Over 36 seeded pairs of each kind the
# worst was 2e-6 (128 samples); unrelated networks give 1e-3 and more.
TOL = 1e-5


def assert_output_follows_activations(result, fitted, direction: str) -> None:
    """The stitched output error is at most |W_out|^2 times the activation error.

    Output = W h + b after the compared layer, so |W e|^2 <= sigma_max(W)^2 |e|^2;
    averaged over samples, output_mse <= sigma_max^2 * F * activation_mse.
    """
    target = fitted.pair.network(direction[-1])
    w = target.out.weight.detach().numpy()
    bound = np.linalg.norm(w, 2) ** 2 * w.shape[1] * result.value("activation_mse", direction)
    assert result.value("output_mse", direction) <= bound * (1 + 1e-9) + 1e-30


def relative_mse(result, direction: str, fitted) -> float:
    """Activation MSE divided by the variance of the target activations."""
    target = direction[-1]
    variance = fitted.activations[target][0].var()
    return result.value("activation_mse", direction) / variance


def fit_and_evaluate(a, b, layer_a, layer_b):
    fitted = fit_pair(NetworkPair(a, b, layer_a, layer_b), SAMPLER, CONFIG)
    return fitted, fitted.evaluate(TEST_X)


@settings(max_examples=6)
@given(seed=st.integers(0, 10_000))
def test_network_is_equivalent_to_itself(seed):
    net = tanh_mlp(seed)
    fitted, result = fit_and_evaluate(net, net, "act2", "act2")
    for direction in ("a->b", "b->a"):
        assert relative_mse(result, direction, fitted) < TOL
        assert_output_follows_activations(result, fitted, direction)
    assert result.value("neighbour_overlap", "a<->b") == 1.0  # the same distances, the same neighbours


@settings(max_examples=6)
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 10_000))
def test_neuron_permuted_copy_is_equivalent(seed, perm_seed):
    net = tanh_mlp(seed)
    perm = np.random.default_rng(perm_seed).permutation(8)
    twin = permuted_copy(net, "fc2", "out", perm)
    x = torch.from_numpy(TEST_X)
    assert torch.allclose(net(x), twin(x), atol=1e-12)  # the copy computes the same function
    fitted, result = fit_and_evaluate(net, twin, "act2", "act2")
    for direction in ("a->b", "b->a"):
        assert relative_mse(result, direction, fitted) < TOL
    # and the map really permutes: A's activations land on B's permuted neurons
    acts_a = fitted.activations["a"][0]
    predicted = fitted.transformation.predict(acts_a, to="b")
    np.testing.assert_allclose(predicted, acts_a[:, perm], atol=1e-6)  # at the samples


@settings(max_examples=6)
@given(seed=st.integers(0, 10_000), q_seed=st.integers(0, 10_000))
def test_rotated_copy_is_equivalent(seed, q_seed):
    net = linear_bottleneck(seed)
    q = random_orthogonal(6, np.random.default_rng(q_seed))
    twin = rotated_copy(net, "code", "out", q)
    x = torch.from_numpy(TEST_X)
    assert torch.allclose(net(x), twin(x), atol=1e-12)
    fitted, result = fit_and_evaluate(net, twin, "code", "code")
    for direction in ("a->b", "b->a"):
        assert relative_mse(result, direction, fitted) < TOL
        assert_output_follows_activations(result, fitted, direction)


@settings(max_examples=6)
@given(seed_a=st.integers(0, 10_000), seed_b=st.integers(0, 10_000))
def test_round_trip_returns_the_input(seed_a, seed_b):
    a, b = tanh_mlp(seed_a), tanh_mlp(seed_b + 10_001)
    fitted = fit_pair(NetworkPair(a, b, "act2", "act2"), SAMPLER, CONFIG)
    t = fitted.transformation
    acts_a = fitted.activations["a"][0]
    from equivtest.capture import capture

    test_acts = capture(a, TEST_X, "act2")
    back = t.predict(t.predict(test_acts, to="b"), to="a")
    assert np.mean((back - test_acts) ** 2) / acts_a.var() < 10 * TOL


def test_unrelated_networks_fail_the_same_tolerance():
    """Positive control: B folds its input (x -> |x - 0.1|), so B cannot be mapped back to A."""
    a = tanh_mlp(1)

    class AbsFirst(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(torch.abs(x - 0.1))

    b = AbsFirst(tanh_mlp(2))
    fitted, result = fit_and_evaluate(a, b, "act2", "inner.act2")
    # B cannot tell x from 0.2 - x: one B activation, two A activations, so B -> A must fail.
    assert relative_mse(result, "b->a", fitted) > 1e-3
    with pytest.raises(AssertionError, match="activation_mse"):
        result.assert_equivalent(activation_mse=1e-6 * fitted.activations["a"][0].var())


def test_two_dimensional_inputs_identity_pair():
    torch.manual_seed(0)
    net = tanh_mlp(3, widths=(2, 12, 12, 1))
    sampler = Sampler(GridPoints([-1.0, -1.0], [1.0, 1.0], 16), GaussianNeighbourhood(64, 0.02), seed=1)
    fitted = fit_pair(NetworkPair(net, net, "act2", "act2"), sampler, FitConfig(n_eigenvectors=6))
    rng = np.random.default_rng(0)
    result = fitted.evaluate(rng.uniform(-0.9, 0.9, size=(100, 2)))
    assert relative_mse(result, "a->b", fitted) < 1e-4
    whitney = result.get("whitney", "a")
    assert "d=2" in whitney.detail and whitney.threshold == 5 and whitney.passed


def test_exact_ties_in_activations_are_explained():
    """x -> |x| on a grid symmetric about 0 gives identical activations for x and -x."""
    from equivtest.errors import FitConfigError

    class Abs(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(torch.abs(x))

    with pytest.raises(FitConfigError, match="not injective"):
        fit_and_evaluate(tanh_mlp(1), Abs(tanh_mlp(2)), "act2", "inner.act2")
