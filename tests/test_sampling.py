"""Samples and neighbourhoods: the grid formula, the Gaussian convention, domain maps."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from equivtest import DatasetPoints, GaussianNeighbourhood, GridPoints, Sampler, SampleSet
from equivtest.errors import EquivtestError


@given(lb=st.floats(-5, 0), width=st.floats(0.1, 5), n=st.integers(1, 300))
def test_grid_follows_the_thesis_formula(lb, width, n):
    ub = lb + width
    x = GridPoints(lb, ub, n).points()
    expected = np.array([lb + i * (ub - lb) / n for i in range(n)])  # eq. 3.1, one point at a time
    np.testing.assert_allclose(x[:, 0], expected, rtol=0, atol=1e-12)
    assert x[0, 0] == lb and x[-1, 0] < ub


def test_grid_on_a_box_is_the_product_of_its_axes():
    x = GridPoints([0.0, -1.0], [1.0, 1.0], 4).points()
    assert x.shape == (16, 2)
    assert set(np.round(x[:, 0], 12)) == {0.0, 0.25, 0.5, 0.75}
    assert set(np.round(x[:, 1], 12)) == {-1.0, -0.5, 0.0, 0.5}


@pytest.mark.parametrize("convention, std", [("variance", np.sqrt(0.05 / 4)), ("std", 0.05 / 4)])
def test_gaussian_neighbourhood_scale_follows_its_convention(convention, std):
    nb = GaussianNeighbourhood(20_000, 0.05, convention).around(np.zeros((3, 2)), np.random.default_rng(0))
    assert nb.shape == (3, 20_000, 2)
    # the sample std of 20,000 draws is within 2% of the true one
    np.testing.assert_allclose(nb.std(axis=1), std, rtol=0.02)
    np.testing.assert_allclose(nb.mean(axis=1), 0.0, atol=5 * std / np.sqrt(20_000))


def test_sampler_is_deterministic_from_its_seed():
    s = Sampler(GridPoints(-1, 1, 10), GaussianNeighbourhood(8, 0.1), seed=3)
    a, b = s.draw(), s.draw()
    np.testing.assert_array_equal(a.neighbourhoods, b.neighbourhoods)
    c = Sampler(GridPoints(-1, 1, 10), GaussianNeighbourhood(8, 0.1), seed=4).draw()
    assert not np.array_equal(a.neighbourhoods, c.neighbourhoods)


def test_dataset_points_draw_distinct_items_of_the_data():
    data = np.arange(100.0).reshape(50, 2)
    x = DatasetPoints(data, 20).points(np.random.default_rng(0))
    assert len({tuple(r) for r in x}) == 20
    assert all(any((r == d).all() for d in data) for r in x)


def test_domain_map_applies_to_samples_and_neighbourhoods():
    ss = Sampler(GridPoints(-1, 1, 5), GaussianNeighbourhood(4, 0.1), seed=0).draw()
    mapped = ss.mapped(lambda x: np.concatenate([x, 2 * x], axis=1))
    assert mapped.samples.shape == (5, 2) and mapped.neighbourhoods.shape == (5, 4, 2)
    np.testing.assert_array_equal(mapped.neighbourhoods[..., 1], 2 * ss.neighbourhoods[..., 0])


def test_sample_set_rejects_neighbourhoods_that_do_not_fit():
    with pytest.raises(EquivtestError, match="do not fit"):
        SampleSet(np.zeros((4, 1)), np.zeros((3, 5, 1)))


def test_describe_distinguishes_data_sets_of_equal_shape():
    a = Sampler(DatasetPoints(np.zeros((10, 1)), 5), GaussianNeighbourhood(4, 0.1)).describe()
    b = Sampler(DatasetPoints(np.ones((10, 1)), 5), GaussianNeighbourhood(4, 0.1)).describe()
    assert a != b
