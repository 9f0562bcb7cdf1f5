"""Bad input, in the engine and the plugin's fit cache: each case once gave a wrong result,
a misleading pass or a raw torch error (cases 2, 3, 4, 6, 11, 12, 13 of the issue
"Nothing silently wrong"; case 1 is tests/test_plugin_hf.py's shared-fit test)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import equivtest
from equivtest import FitConfig, GaussianNeighbourhood, GridPoints, NetworkPair, Sampler, fit
from equivtest.errors import EquivtestError
from tests.test_plugin import project, run  # noqa: F401

pytest_plugins = ["pytester"]


def mlp(seed, d_in=1, d_out=1, dtype=torch.float64):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, 8), nn.Tanh(), nn.Linear(8, d_out)).to(dtype).eval()


SAMPLER = Sampler(GridPoints(-1.0, 1.0, 48), GaussianNeighbourhood(16, 0.05))
CONFIG = FitConfig(n_eigenvectors=3)


@pytest.fixture(scope="module")
def self_fit():
    net = mlp(0)
    return fit(NetworkPair(net, net, "1", "1"), SAMPLER, CONFIG)


# -- case 2: the fit cache keys samplers by the data they draw ------------------------------
def test_fit_cache_keys_samplers_by_content_not_by_description(project):
    project.makepyfile(test_tensor_sources="""
        from dataclasses import dataclass

        import torch
        import equivtest
        from eqnets import CONFIG


        @dataclass
        class Points:  # a user's own point source over a tensor: not hashable, described by type alone
            values: torch.Tensor

            def points(self, rng):
                return self.values.numpy()[:, None]


        def test_two_tensors(self_pair, equivtest_fit):
            nb = equivtest.GaussianNeighbourhood(16, 0.05, convention="std")
            left = equivtest.Sampler(Points(torch.linspace(-1, 0, 48, dtype=torch.float64)), nb)
            right = equivtest.Sampler(Points(torch.linspace(0, 1, 64, dtype=torch.float64)), nb)
            first = equivtest_fit(self_pair, left, CONFIG)
            second = equivtest_fit(self_pair, right, CONFIG)
            assert first.samples.n_samples == 48 and second.samples.n_samples == 64
            assert second.samples.samples.min() >= 0.0
            again = equivtest_fit(self_pair, equivtest.Sampler(Points(torch.linspace(0, 1, 64, dtype=torch.float64)), nb), CONFIG)
            assert again.fitted is second.fitted  # equal content: one fit
    """)
    run(project).assert_outcomes(passed=1)


# -- case 3: NaN logits are no answer -------------------------------------------------------
class HalfNaN(nn.Module):
    """A classifier whose logits are NaN for inputs above 0."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return torch.where(x[:, :1] > 0, torch.full_like(out, float("nan")), out)


def test_nan_logits_count_as_disagreement_and_the_result_says_so():
    net = HalfNaN(mlp(0, d_out=3))
    pair = NetworkPair(mlp(0, d_out=3), net, "1", "net.1", task="classification")
    fitted = fit(pair, SAMPLER, CONFIG)
    result = fitted.evaluate(np.linspace(-0.9, 0.9, 40)[:, None])
    agree = result.get("agreement", "a->b")
    assert agree.value <= 0.5 + 1e-12 and "not finite" in agree.detail
    linear = result.get("linear_agreement", "a->b")
    assert linear.value <= 0.5 + 1e-12 and "not finite" in linear.detail
    with pytest.raises(equivtest.EquivalenceFailure):
        result.assert_equivalent(agreement={"a->b": 0.99})


# -- case 4: infinite delta and infinite test inputs ----------------------------------------
def test_an_infinite_delta_or_test_input_is_refused_naming_the_input():
    net = mlp(0)
    pair = NetworkPair(net, net, "1", "1")
    with pytest.raises(EquivtestError, match="neighbourhood points.*finite delta"):
        fit(pair, Sampler(GridPoints(-1.0, 1.0, 32), GaussianNeighbourhood(8, float("inf"))), CONFIG)
    fitted = fit(pair, SAMPLER, CONFIG)
    x = np.linspace(-0.9, 0.9, 20)[:, None]
    x[7] = np.inf
    with pytest.raises(EquivtestError, match=r"first: input 7"):
        fitted.evaluate(x)


# -- case 6: float16 networks and a tiny delta ----------------------------------------------
def test_float16_neighbourhoods_below_the_dtype_resolution_warn():
    net = mlp(0).to(torch.float16)
    pair = NetworkPair(net, net, "1", "1")
    tiny = Sampler(GridPoints(-1.0, 1.0, 32), GaussianNeighbourhood(32, 1e-6))
    with pytest.warns(RuntimeWarning, match="cannot resolve the neighbourhood's spread"):
        try:
            fit(pair, tiny, CONFIG)
        except EquivtestError:
            pass  # collapsed neighbourhoods may not fit at all; the warning is what matters
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fit(pair, Sampler(GridPoints(-1.0, 1.0, 32), GaussianNeighbourhood(32, 0.05)), CONFIG)


# -- case 11: networks that return a dict or a tuple ---------------------------------------
class DictOut(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return {"logits": self.net(x), "hidden": x}


def test_a_dict_output_needs_a_selector_and_works_with_one():
    pair = NetworkPair(DictOut(mlp(0)), DictOut(mlp(0)), "net.1", "net.1")
    fitted = fit(pair, SAMPLER, CONFIG)
    with pytest.raises(EquivtestError, match=r"returns a dict.*output_a=.*\['logits', 'hidden'\]"):
        fitted.evaluate(np.linspace(-0.9, 0.9, 10)[:, None])
    chosen = NetworkPair(DictOut(mlp(0)), DictOut(mlp(0)), "net.1", "net.1", output_a="logits", output_b="logits")
    result = fit(chosen, SAMPLER, CONFIG).evaluate(np.linspace(-0.9, 0.9, 10)[:, None])
    assert result.value("output_mse", "a->b") < 1e-4  # a working fit on 48 samples (about 5e-6)


# -- case 12: shapes --------------------------------------------------------------------------
def test_input_shape_mismatches_name_both_shapes_and_the_domain_map(self_fit):
    with pytest.raises(EquivtestError, match=r"shape \(10,\).*x\[:, None\]"):
        self_fit.evaluate(np.linspace(-1, 1, 10))
    with pytest.raises(EquivtestError, match=r"per-input shape \(3,\), the fit's inputs \(1,\).*domain_map"):
        self_fit.evaluate(np.zeros((5, 3)))
    two_widths = NetworkPair(mlp(0, d_in=1), mlp(1, d_in=2), "1", "1")
    with pytest.raises(EquivtestError, match=r"cannot take inputs of shape \(48, 1\).*domain_map"):
        fit(two_widths, SAMPLER, CONFIG)


# -- case 13: empty, integer, boolean and grad-tracking test inputs -------------------------
def test_empty_bool_and_grad_inputs(self_fit):
    with pytest.raises(EquivtestError, match="empty"):
        self_fit.evaluate(np.zeros((0, 1)))
    with pytest.raises(EquivtestError, match="booleans"):
        self_fit.evaluate(np.ones((4, 1), dtype=bool))
    x = torch.linspace(-0.9, 0.9, 12, dtype=torch.float64)[:, None].requires_grad_(True)
    result = self_fit.evaluate(x)  # detached, not a raw torch error
    assert result.value("activation_mse", "a->b") < 1e-3  # a working fit on 48 samples (about 2e-5)
    with pytest.raises(EquivtestError, match=r"cannot take int64 inputs.*x.astype\(float\)"):
        self_fit.evaluate(np.zeros((3, 1), dtype=np.int64))  # integers pass unchanged (token ids)


def test_a_result_is_a_value_and_the_fit_unchanged_by_evaluate(self_fit):
    before = dict(vars(self_fit))
    first = self_fit.evaluate(np.linspace(-1, 1, 9)[:, None])
    second = self_fit.evaluate(np.linspace(-0.5, 0.5, 5)[:, None])
    assert dict(vars(self_fit)).keys() == before.keys()
    assert first.arrays.inputs.shape == (9, 1) and second.arrays.inputs.shape == (5, 1)
    with pytest.raises(ValueError):
        first.arrays.activations["a"][0, 0] = 1.0  # read-only
    with pytest.raises(dataclasses.FrozenInstanceError):
        self_fit.config = CONFIG
