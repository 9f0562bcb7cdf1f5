"""Options are checked when a config or sampler is made, and each message names the fix
that applies where it is raised."""

from __future__ import annotations

import numpy as np
import pytest

from equivtest import FitConfig, GaussianNeighbourhood, GridPoints
from equivtest.errors import ActivationError, EquivtestError, FitConfigError
from equivtest.measures import LinearCKA, LinearStitch, ProcrustesDistance
from equivtest.sampling import DatasetPoints

# -- case 14: every option checked when the config is made ---------------------------------


@pytest.mark.parametrize("options, message", [
    ({"rbf_kernel": "gauss"}, r"rbf_kernel must be one of thin_plate_spline, cubic, quintic, linear, got 'gauss'"),
    ({"rbf_kernel": "gaussian"}, r"need a shape parameter"),
    ({"n_eigenvectors": 3.7}, r"n_eigenvectors must be a whole number \(an int\), got 3.7; it is not rounded"),
    ({"n_eigenvectors": 1}, r"n_eigenvectors must be at least 2"),
    ({"epsilon_k": 2.5}, r"epsilon_k must be a whole number"),
    ({"k_neighbours": 2.9}, r"k_neighbours must be a whole number"),
    ({"rbf_neighbors": 10.5}, r"rbf_neighbors must be a whole number"),
    ({"batch_size": 0}, r"batch_size must be at least 1"),
    ({"max_rows": 1}, r"max_rows must be at least 2"),
    ({"max_rows": 100.5}, r"max_rows must be a whole number"),
    ({"epsilon": "med"}, r'epsilon must be "median" or a positive finite kernel bandwidth'),
    ({"epsilon": -1.0}, r'epsilon must be "median" or a positive'),
    ({"epsilon": float("inf")}, r'epsilon must be "median" or a positive'),
    ({"smoothing": -1e-8}, r"smoothing must be a number at least 0 and finite"),
    ({"smoothing": float("nan")}, r"smoothing must be a number"),
    ({"covariance_ridge": "1"}, r"covariance_ridge must be a number"),
    ({"rcond": 1.0}, r"rcond must be a number in \[0, 1\)"),
    ({"kernel_device": 0}, r"kernel_device must be None \(the CPU\) or a torch device name"),
])
def test_a_bad_option_is_refused_when_the_config_is_made(options, message):
    with pytest.raises(FitConfigError, match=message):
        FitConfig(**options)


def test_good_options_are_kept_as_given():
    config = FitConfig(n_eigenvectors=np.int64(4), epsilon=0.5, rbf_kernel="linear", rbf_neighbors=10, smoothing=1e-8,
                       k_neighbours=20, kernel_device="cpu", max_rows=500)
    assert config.n_eigenvectors == 4 and config.transformation(("a", "b")).rbf_kernel == "linear"


@pytest.mark.parametrize("make, message", [
    (lambda: GaussianNeighbourhood(2.9, 0.05), r"the neighbourhood size must be a whole number \(an int\), got 2.9"),
    (lambda: GaussianNeighbourhood(64.0, 0.05), r"the neighbourhood size must be a whole number"),
    (lambda: GaussianNeighbourhood(True, 0.05), r"the neighbourhood size must be a whole number"),
    (lambda: GridPoints(-1, 1, 2.5).points(), r"n \(points per axis\) must be a whole number"),
    (lambda: DatasetPoints(np.zeros((10, 2)), 3.5).points(np.random.default_rng(0)),
     r"n \(samples to draw\) must be a whole number"),
])
def test_a_fractional_count_in_sampling_is_refused_not_rounded(make, message):
    with pytest.raises(EquivtestError, match=message):
        make()


# -- case 16: the NaN message names the fix that applies -------------------------------------


@pytest.mark.parametrize("measure", [LinearCKA(), LinearCKA(debiased=True), ProcrustesDistance(), LinearStitch()],
                         ids=repr)
def test_a_nan_in_a_measures_activations_names_the_measures_fix(measure):
    x = np.random.default_rng(0).standard_normal((20, 3))
    x[4, 1] = np.nan
    with pytest.raises(ActivationError, match="non-finite") as info:
        measure.fit(x, np.random.default_rng(1).standard_normal((20, 3)))
    message = str(info.value)
    assert "delta" not in message and "neighbourhood" not in message
    assert "leave out the inputs whose activations are not finite" in message


def test_a_nan_given_to_a_fitted_linear_stitch_names_the_measures_fix():
    rng = np.random.default_rng(0)
    stitch = LinearStitch().fit(rng.standard_normal((20, 3)), rng.standard_normal((20, 2)))
    with pytest.raises(ActivationError, match="leave out the inputs") as info:
        stitch.predict(np.full((2, 3), np.inf))
    assert "delta" not in str(info.value)


def test_a_nan_while_fitting_still_points_at_delta():
    from equivtest.geometry.covariance import neighbourhood_precision_factors

    nb = np.random.default_rng(0).standard_normal((5, 8, 3))
    nb[0, 0, 0] = np.inf
    with pytest.raises(ActivationError, match="lower the neighbourhood scale delta"):
        neighbourhood_precision_factors(nb, 1e-6)
