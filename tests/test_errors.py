"""Bad inputs give an error of the right class whose message names the problem and the fix.

Every check asserts both the exception type and key words of its message.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from equivtest import errors
from equivtest.capture import capture, capture_neighbourhoods
from equivtest.errors import (
    ActivationError,
    EquivtestError,
    FitConfigError,
    LayerNotFoundError,
    NotFittedError,
)
from equivtest.pairs import NetworkPair
from equivtest.sampling import DatasetPoints, GaussianNeighbourhood, GridPoints, Sampler
from equivtest.stitch import StitchedNetwork
from equivtest.transform import Transformation
from tests._nets import small_mlp


@pytest.fixture(scope="module")
def nets():
    return small_mlp(0), small_mlp(1)


@pytest.fixture(scope="module")
def acts(nets):
    """Sample and neighbourhood activations (64 samples, 64 neighbours, 8 features) of both networks."""
    sample_set = Sampler(GridPoints(-1, 1, 64), GaussianNeighbourhood(64, 0.05), seed=0).draw()
    a, b = nets
    sa, na = capture_neighbourhoods(a, sample_set.samples, sample_set.neighbourhoods, "act1")
    sb, nb = capture_neighbourhoods(b, sample_set.samples, sample_set.neighbourhoods, "act1")
    return sa, na, sb, nb


@pytest.fixture(scope="module")
def fitted(acts):
    return Transformation(3).fit(*acts)


# -- non-finite activations -------------------------------------------------------------


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "inf"), (-np.inf, "inf")])
def test_non_finite_sample_activations_name_kind_and_index(acts, bad, word):
    sa, na, sb, nb = acts
    sa = sa.copy()
    sa[3, 2] = bad
    with pytest.raises(ActivationError, match=rf"network A.*{word} first at index \(3, 2\)") as info:
        Transformation(3).fit(sa, na, sb, nb)
    assert "non-finite" in str(info.value)
    assert "check the network's inputs" in str(info.value)  # the fix


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "inf")])
def test_non_finite_neighbourhood_activations_of_b(acts, bad, word):
    sa, na, sb, nb = acts
    nb = nb.copy()
    nb[5, 7, 1] = bad
    with pytest.raises(ActivationError, match=rf"neighbourhood activations of network B.*{word} first at index \(5, 7, 1\)"):
        Transformation(3).fit(sa, na, sb, nb)


def test_non_finite_count_is_reported(acts):
    sa, na, sb, nb = acts
    sb = sb.copy()
    sb[0, 0] = np.nan
    sb[10, 4] = np.inf
    with pytest.raises(ActivationError, match=r"2 non-finite values \(NaN first at index \(0, 0\)\)"):
        Transformation(3).fit(sa, na, sb, nb)


def test_non_finite_input_to_predict(fitted, acts):
    x = acts[0][:4].copy()
    x[1, 6] = np.nan
    with pytest.raises(ActivationError, match=r"NaN first at index \(1, 6\)"):
        fitted.predict(x, to="b")


# -- hyper-parameters that cannot work with the data ------------------------------------


def test_fewer_samples_than_eigenvectors_names_both_numbers(acts):
    sa, na, sb, nb = acts
    with pytest.raises(FitConfigError, match=r"5 samples cannot give 8 diffusion-map eigenvectors") as info:
        Transformation(n_eigenvectors=8).fit(sa[:5], na[:5], sb[:5], nb[:5])
    message = str(info.value)
    assert "use more than 8 samples" in message and "at most 4 eigenvectors" in message


def test_as_many_samples_as_eigenvectors_is_refused(acts):
    sa, na, sb, nb = acts
    with pytest.raises(FitConfigError, match=r"8 samples cannot give 8"):
        Transformation(n_eigenvectors=8).fit(sa[:8], na[:8], sb[:8], nb[:8])


def test_too_few_eigenvectors(acts):
    with pytest.raises(FitConfigError, match=r"n_eigenvectors must be at least 2.*got 1"):
        Transformation(n_eigenvectors=1).fit(*acts)


# -- layer names ------------------------------------------------------------------------


def test_layer_not_found_is_a_lookup_error():
    assert issubclass(LayerNotFoundError, LookupError)
    assert issubclass(LayerNotFoundError, ValueError)


def test_capture_unknown_layer_lists_close_matches(nets):
    a, _ = nets
    with pytest.raises(LayerNotFoundError, match=r"no layer 'act'; did you mean 'act1'") as info:
        capture(a, np.zeros((3, 1)), "act")
    assert "named_modules" in str(info.value)  # says how layers are named
    with pytest.raises(LookupError, match=r"'fc3'.*'fc1'.*'fc2'|'fc3'.*'fc2'.*'fc1'"):
        capture(a, np.zeros((3, 1)), "fc3")


def test_capture_unknown_layer_without_close_match_lists_layers(nets):
    a, _ = nets
    with pytest.raises(LayerNotFoundError, match=r"available layers: 'fc1', 'act1', 'fc2'"):
        capture(a, np.zeros((3, 1)), "zzzzzzzz")


def test_network_pair_checks_layers_at_construction(nets):
    a, b = nets
    with pytest.raises(LayerNotFoundError, match=r"no layer 'act'.*'act1'"):
        NetworkPair(a, b, "act", "act1")
    with pytest.raises(LayerNotFoundError, match=r"no layer 'fc3'.*'fc1'"):
        NetworkPair(a, b, "act1", "fc3")
    NetworkPair(a, b, "act1", "act1")  # the right names are accepted


def test_stitched_network_checks_target_layer_at_construction(nets, fitted):
    a, b = nets
    with pytest.raises(LayerNotFoundError, match=r"no layer 'act'.*'act1'"):
        StitchedNetwork(a, b, "act1", "act", fitted, "b")


def test_stitched_network_unknown_source_layer_fails_when_called(nets, fitted):
    a, b = nets
    try:
        stitched = StitchedNetwork(a, b, "fc3", "act1", fitted, "b")
    except LayerNotFoundError:
        return  # refused already at construction: even better
    with pytest.raises(LayerNotFoundError, match=r"no layer 'fc3'.*'fc1'"):
        stitched(np.zeros((4, 1)))


def test_stitched_network_checks_source_layer_at_construction(nets, fitted):
    """BUG: StitchedNetwork resolves only the target layer in __init__; a wrong source
    layer is only reported on the first call (NetworkPair checks both up front)."""
    a, b = nets
    with pytest.raises(LayerNotFoundError, match=r"no layer 'fc3'.*'fc1'"):
        StitchedNetwork(a, b, "fc3", "act1", fitted, "b")


# -- neighbourhoods of one point --------------------------------------------------------


def test_gaussian_neighbourhood_of_one_point_is_refused():
    with pytest.raises(EquivtestError, match=r"at least 2 points.*got size=1") as info:
        GaussianNeighbourhood(1, 0.05)
    assert isinstance(info.value, ValueError)
    assert "tens to thousands" in str(info.value)  # the fix


def test_fit_with_one_point_neighbourhoods_is_refused(acts):
    sa, na, sb, nb = acts
    with pytest.raises(FitConfigError, match=r"1 point each; a covariance needs at least 2.*raise the neighbourhood size"):
        Transformation(3).fit(sa, na[:, :1], sb, nb[:, :1])


@pytest.mark.parametrize("delta", [0.0, -0.1, float("nan")])
def test_gaussian_neighbourhood_needs_positive_delta(delta):
    with pytest.raises(EquivtestError, match=r"delta must be positive"):
        GaussianNeighbourhood(16, delta)


# -- shapes and counts ------------------------------------------------------------------


def test_mismatched_sample_counts_say_the_counts(acts):
    sa, na, sb, nb = acts
    with pytest.raises(ActivationError, match=r"network A has 64 sample activations and network B has 63") as info:
        Transformation(3).fit(sa, na, sb[:63], nb[:63])
    assert "same samples" in str(info.value)  # the fix


def test_neighbourhood_features_do_not_match_samples(acts):
    sa, na, sb, nb = acts
    with pytest.raises(ActivationError, match=r"network A: neighbourhood activations of shape \(64, 64, 5\).*expected \(64, M, 8\)"):
        Transformation(3).fit(sa, na[:, :, :5], sb, nb)


def test_neighbourhood_count_does_not_match_samples(acts):
    sa, na, sb, nb = acts
    with pytest.raises(ActivationError, match=r"network B: neighbourhood activations of shape \(60, 64, 8\).*expected \(64, M, 8\)"):
        Transformation(3).fit(sa, na, sb, nb[:60])


def test_neighbourhoods_of_wrong_rank(acts):
    sa, na, sb, nb = acts
    with pytest.raises(ActivationError, match=r"must have 3 dimensions, got shape \(64, 8\)"):
        Transformation(3).fit(sa, sa, sb, nb)


def test_samples_of_wrong_rank(acts):
    sa, na, sb, nb = acts
    with pytest.raises(ActivationError, match=r"sample activations of network A must have 2 dimensions.*flatten"):
        Transformation(3).fit(na, na, sb, nb)


def test_empty_activations(acts):
    _, na, sb, nb = acts
    with pytest.raises(ActivationError, match=r"empty.*capture at least one sample"):
        Transformation(3).fit(np.zeros((0, 8)), na, sb, nb)


# -- using a Transformation -------------------------------------------------------------


def test_predict_unfitted_raises_not_fitted():
    """BUG: predict() reads ``self.to_b_`` before checking the fit, so an unfitted
    Transformation raises a plain AttributeError instead of NotFittedError."""
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit"):
        Transformation(3).predict(np.zeros((2, 8)), to="b")


def test_aligned_unfitted_raises_not_fitted():
    """BUG (same cause as predict): aligned() reads ``alignment_ab_`` first."""
    with pytest.raises(NotFittedError, match=r"not fitted yet"):
        Transformation(3).aligned(np.zeros((2, 8)), to="b")


@pytest.mark.parametrize(
    "use",
    [
        lambda t: t.embed(np.zeros((2, 8)), "a"),
        lambda t: t.diffusion_residual(),
        lambda t: t.save("never-written.npz"),
    ],
    ids=["embed", "diffusion_residual", "save"],
)
def test_other_methods_unfitted_raise_not_fitted(use, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(NotFittedError, match=r"not fitted yet; call fit\(\.\.\.\) or Transformation\.load"):
        use(Transformation(3))
    assert list(tmp_path.iterdir()) == []


def test_not_fitted_error_is_an_attribute_error():
    assert issubclass(NotFittedError, AttributeError) and issubclass(NotFittedError, ValueError)


def test_predict_unknown_target_names_a_and_b(fitted, acts):
    with pytest.raises(ValueError, match=r"unknown network 'c'; name the target network as 'a', 'b'"):
        fitted.predict(acts[0][:3], to="c")


def test_predict_unknown_target_also_lists_custom_names(acts):
    t = Transformation(3, names=("small", "large")).fit(*acts)
    with pytest.raises(ValueError, match=r"'a', 'b' or one of \['small', 'large'\]"):
        t.predict(acts[0][:3], to="medium")
    np.testing.assert_array_equal(t.predict(acts[0][:3], to="large"), t.predict(acts[0][:3], to="b"))


def test_predict_with_wrong_number_of_features(fitted, acts):
    with pytest.raises(ActivationError, match=r"network A have 5 features, but the transformation was fitted on 8.*same layer"):
        fitted.predict(acts[0][:, :5], to="b")
    with pytest.raises(ActivationError, match=r"network B have 9 features.*fitted on 8"):
        fitted.predict(np.zeros((3, 9)), to="a")


def test_predict_with_one_dimensional_input(fitted, acts):
    with pytest.raises(ActivationError, match=r"must have 2 dimensions, got shape \(8,\)"):
        fitted.predict(acts[0][0], to="b")


# -- sampling ---------------------------------------------------------------------------


@pytest.mark.parametrize("lower, upper", [(1.0, 1.0), (1.0, -1.0), ([0.0, 0.0], [1.0, 0.0])])
def test_grid_upper_must_exceed_lower(lower, upper):
    grid = GridPoints(lower, upper, 8)
    with pytest.raises(EquivtestError, match=r"each upper bound must exceed its lower bound"):
        grid.points()
    with pytest.raises(ValueError, match=r"upper bound must exceed"):
        Sampler(grid, GaussianNeighbourhood(4, 0.05)).draw()


def test_grid_bounds_of_different_lengths():
    with pytest.raises(EquivtestError, match=r"scalars or sequences of equal length"):
        GridPoints([0.0, 0.0], [1.0, 1.0, 1.0], 4).points()


def test_grid_needs_positive_n():
    with pytest.raises(EquivtestError, match=r"n must be a positive number of points per axis, got 0"):
        GridPoints(0.0, 1.0, 0).points()


def test_dataset_points_more_than_the_data_has():
    data = np.arange(10.0).reshape(10, 1)
    with pytest.raises(EquivtestError, match=r"cannot draw 11 samples from a data set of 10 items; ask for between 1 and 10"):
        DatasetPoints(data, 11).points(np.random.default_rng(0))
    with pytest.raises(EquivtestError, match=r"cannot draw 0 samples"):
        DatasetPoints(data, 0).points(np.random.default_rng(0))
    assert DatasetPoints(data, 10).points(np.random.default_rng(0)).shape == (10, 1)


def test_gaussian_neighbourhood_unknown_convention():
    with pytest.raises(EquivtestError, match=r"convention must be one of \('variance', 'std'\), got 'sigma'"):
        GaussianNeighbourhood(16, 0.05, convention="sigma")


def test_capture_batch_size_must_be_positive(nets):
    with pytest.raises(EquivtestError, match=r"batch_size must be a positive integer, got 0"):
        capture(nets[0], np.zeros((3, 1)), "act1", batch_size=0)


# -- the hierarchy ----------------------------------------------------------------------


def test_every_error_class_is_a_value_error():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if c.__module__ == errors.__name__]
    assert {c.__name__ for c in classes} >= {
        "EquivtestError", "ActivationError", "LayerNotFoundError",
        "FitConfigError", "TransformFileError", "NotFittedError",
    }
    for cls in classes:
        assert issubclass(cls, ValueError), cls
        assert issubclass(cls, EquivtestError), cls


def test_errors_can_be_caught_as_value_error(acts):
    sa, na, sb, nb = acts
    with pytest.raises(ValueError):
        Transformation(3).fit(sa, na, sb[:10], nb[:10])
