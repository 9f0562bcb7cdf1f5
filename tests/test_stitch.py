"""The stitched network: A up to its layer, the transformation, B after its layer."""

import copy

import numpy as np
import pytest
import torch

from equivtest import FitConfig, GaussianNeighbourhood, GridPoints, LayerSpec, NetworkPair, Sampler, fit_pair
from equivtest.capture import capture
from equivtest.errors import EquivtestError
from equivtest.layers import fill_unpredicted
from tests._nets import tanh_mlp

SAMPLER = Sampler(GridPoints(-1.0, 1.0, 128), GaussianNeighbourhood(64, 0.05), seed=0)
X = np.linspace(-0.95, 0.95, 50)[:, None]


def test_fill_puts_predicted_neurons_in_place_and_their_mean_elsewhere():
    predicted = np.array([[1.0, 3.0], [2.0, 6.0]])
    full = fill_unpredicted(predicted, [1, 3], 5)
    np.testing.assert_array_equal(full, [[2, 1, 2, 3, 2], [4, 2, 4, 6, 4]])
    every_other = fill_unpredicted(predicted, slice(None, None, 2), 4)
    np.testing.assert_array_equal(every_other, [[1, 2, 3, 2], [2, 4, 6, 4]])


def test_fill_refuses_a_width_mismatch_without_selection():
    with pytest.raises(EquivtestError, match="select the same neurons"):
        fill_unpredicted(np.zeros((2, 3)), None, 5)


def test_stitched_output_is_the_target_head_applied_to_the_prediction():
    a, b = tanh_mlp(0), tanh_mlp(1)
    layer_b = LayerSpec("act2", neurons=slice(None, None, 2))
    fitted = fit_pair(NetworkPair(a, b, "act2", layer_b), SAMPLER, FitConfig())
    stitched = fitted.stitched(to="b")(X)
    predicted = fitted.transformation.predict(capture(a, X, "act2"), to="b")
    filled = fill_unpredicted(predicted, layer_b.neurons, 8)
    manual = b.out(torch.from_numpy(filled)).detach().numpy()
    np.testing.assert_allclose(stitched, manual, rtol=0, atol=1e-12)


def test_target_input_zeros_gives_the_same_output_for_a_feed_forward_target():
    # every layer before the replaced one is overwritten, so the target's input does not matter
    a, b = tanh_mlp(2), tanh_mlp(3)
    fitted = fit_pair(NetworkPair(a, b, "act2", "act2"), SAMPLER, FitConfig())
    real = fitted.stitched(to="b")(X)
    zeros = fitted.stitched(to="b", target_input="zeros")(X)
    np.testing.assert_allclose(real, zeros, rtol=0, atol=1e-12)


def test_stitching_a_network_with_itself_converges_to_it():
    # Interpolation between samples is the only error left; it falls fast with more samples
    # (measured max error 4.8e-4 at 128 samples, 4.2e-6 at 512, outputs of size 0.5).
    net = tanh_mlp(4)
    reference = net(torch.from_numpy(X)).detach().numpy()
    errors = []
    for n in (128, 512):
        sampler = Sampler(GridPoints(-1.0, 1.0, n), GaussianNeighbourhood(256, 0.05), seed=0)
        fitted = fit_pair(NetworkPair(net, copy.deepcopy(net), "act1", "act1"), sampler, FitConfig())
        errors.append(np.abs(fitted.stitched(to="a")(X) - reference).max())
    assert errors[1] < 1e-4
    assert errors[1] < errors[0] / 10


def test_stitched_network_rejects_an_unknown_target_input():
    net = tanh_mlp(5)
    fitted = fit_pair(NetworkPair(net, net, "act1", "act1"), SAMPLER, FitConfig())
    with pytest.raises(EquivtestError, match="target_input"):
        fitted.stitched(to="b", target_input="noise")


def test_explicit_cpu_device_matches_the_default():
    a, b = tanh_mlp(6), tanh_mlp(7)
    default = fit_pair(NetworkPair(a, b, "act2", "act2"), SAMPLER, FitConfig()).evaluate(X)
    on_cpu = fit_pair(NetworkPair(a, b, "act2", "act2", device="cpu"), SAMPLER, FitConfig()).evaluate(X)
    assert default.value("output_mse", "a->b") == on_cpu.value("output_mse", "a->b")


def test_unknown_device_is_a_clear_error():
    with pytest.raises(EquivtestError, match="cannot move the networks"):
        NetworkPair(tanh_mlp(0), tanh_mlp(1), "act1", "act1", device="nosuchdevice")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_device_matches_cpu():
    a, b = tanh_mlp(6), tanh_mlp(7)
    cpu = fit_pair(NetworkPair(a, b, "act2", "act2"), SAMPLER, FitConfig()).evaluate(X)
    gpu = fit_pair(
        NetworkPair(copy.deepcopy(a), copy.deepcopy(b), "act2", "act2", device="cuda"), SAMPLER, FitConfig()
    ).evaluate(X)
    for c in cpu.criteria:
        assert gpu.value(c.name, c.direction) == pytest.approx(c.value, rel=1e-6, abs=1e-12)
