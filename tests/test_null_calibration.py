"""Null calibration: a fit on randomly re-paired samples is what 'chance' looks like."""

import numpy as np
import pytest

from equivtest import FitConfig, GaussianNeighbourhood, GridPoints, NetworkPair, Sampler, fit_pair
from tests._nets import tanh_mlp

SAMPLER = Sampler(GridPoints(-1.0, 1.0, 128), GaussianNeighbourhood(64, 0.05), seed=0)
X = np.linspace(-0.9, 0.9, 100)[:, None]


@pytest.fixture(scope="module")
def fitted():
    return fit_pair(NetworkPair(tanh_mlp(0), tanh_mlp(1), "act2", "act2"), SAMPLER, FitConfig())


def test_identity_repairing_reproduces_the_fit(fitted):
    t = fitted.transformation
    same = t.repaired(np.arange(SAMPLER.points.n))
    acts = fitted.activations["a"][0]
    np.testing.assert_array_equal(same.predict(acts, to="b"), t.predict(acts, to="b"))


def test_equivalent_pair_beats_chance_by_orders_of_magnitude(fitted):
    result = fitted.evaluate(X, null_shuffles=3)
    for direction in ("a->b", "b->a"):
        null = result.value("null_activation_mse", direction)
        assert null > 100 * result.value("activation_mse", direction)
        assert result.value("null_ratio", direction) == pytest.approx(result.value("activation_mse", direction) / null)
        assert result.value("null_ratio", direction) < 1e-2


def test_null_is_off_by_default_and_repairing_checks_its_permutation(fitted):
    names = {c.name for c in fitted.evaluate(X).criteria}
    assert "null_ratio" not in names
    with pytest.raises(ValueError, match="reorder all 128 samples"):
        fitted.transformation.repaired(np.zeros(128, dtype=int))
