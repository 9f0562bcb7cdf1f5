"""The covariance ridge, the kernel_components diagnostic, local RBFs and row draws (issue 9).

A ridge on the neighbourhood covariances bounds the Mahalanobis distance of samples
where a layer saturates; ``kernel_components`` says when the kernel graph has fallen
into pieces; ``FitConfig.max_rows`` fits on random rows of both networks, still paired.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equivtest.errors import FitConfigError
from equivtest.geometry import neighbourhood_covariances, precision_factors, pseudo_inverses
from equivtest.geometry.covariance import neighbourhood_precision_factors
from equivtest.interpolation import PrincipalRBF
from equivtest.transform import Transformation

FAST = settings(max_examples=25, deadline=None)


def clouds(seed: int, n: int, f: int, m: int, scales=None):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    scales = np.ones(n) if scales is None else np.asarray(scales)
    nb = x[:, None, :] + scales[:, None, None] * (rng.normal(size=(n, m, f)) @ (np.eye(f) + 0.3 * rng.normal(size=(f, f))))
    return x, nb


@FAST
@given(seed=st.integers(0, 2**32 - 1), f=st.integers(1, 5), ridge=st.floats(0.0, 10.0))
def test_ridge_adds_to_every_kept_eigenvalue_before_inversion(seed, f, ridge):
    _, nb = clouds(seed, 6, f, 4 * f + 4)
    cov = neighbourhood_covariances(nb)
    evals, evecs = np.linalg.eigh(cov)
    expected = np.einsum("nij,nj,nkj->nik", evecs, 1.0 / (evals + ridge), evecs)
    np.testing.assert_allclose(pseudo_inverses(precision_factors(cov, 0.0, ridge)), expected, rtol=1e-8, atol=1e-12)


@FAST
@given(seed=st.integers(0, 2**32 - 1), ridge=st.sampled_from([0.0, 0.1, 1.0, 3.0]))
def test_relative_ridge_is_the_median_per_feature_variance_and_chunking_does_not_change_it(seed, ridge):
    _, nb = clouds(seed, 9, 3, 20, scales=np.geomspace(1e-3, 10.0, 9))
    cov = neighbourhood_covariances(nb)
    absolute = ridge * np.median(np.trace(cov, axis1=1, axis2=2) / 3)
    whole = pseudo_inverses(precision_factors(cov, ridge=absolute))
    for chunk in (1, 4, 100):
        chunked = pseudo_inverses(neighbourhood_precision_factors(nb, chunk=chunk, ridge=ridge))
        np.testing.assert_allclose(chunked, whole, rtol=1e-9, atol=1e-12)


def test_negative_ridge_is_refused():
    _, nb = clouds(0, 4, 2, 8)
    with pytest.raises(FitConfigError, match="ridge must be >= 0"):
        neighbourhood_precision_factors(nb, ridge=-1.0)
    with pytest.raises(FitConfigError, match="ridge must be >= 0"):
        precision_factors(neighbourhood_covariances(nb), ridge=-0.5)


def saturating_layer(seed: int, n: int = 50, m: int = 30):
    """Samples of a layer whose neighbourhoods barely move for four of them (as where it saturates)."""
    scales = np.full(n, 0.3)
    scales[:4] = 1e-4
    return clouds(seed, n, 2, m, scales=scales)


def fitted(ridge: float, layer, **kwargs) -> Transformation:
    x, nb = layer
    return Transformation(6, epsilon_k=5, covariance_ridge=ridge, **kwargs).fit(x, nb, x, nb)


def test_a_ridge_reconnects_a_kernel_graph_that_saturated_samples_cut_apart():
    layer = saturating_layer(1)
    plain = {c.direction: c.value for c in fitted(0.0, layer).component_criteria()}
    ridged = {c.direction: c.value for c in fitted(1.0, layer).component_criteria()}
    assert plain["a"] > 1 and plain["b"] > 1
    assert ridged == {"a": 1.0, "b": 1.0}


def test_kernel_components_is_one_for_a_connected_graph_and_counts_pieces():
    x, nb = clouds(2, 40, 2, 30, scales=np.full(40, 0.3))
    t = Transformation(4, epsilon_k=8).fit(x, nb, x, nb)
    assert [c.value for c in t.component_criteria()] == [1.0, 1.0]
    # three far-apart copies of the cloud: three pieces, whatever the pairing
    far = np.concatenate([x + 1e3 * k for k in range(3)])
    far_nb = np.concatenate([nb + 1e3 * k for k in range(3)])
    t = Transformation(5, epsilon_k=8).fit(far, far_nb, far, far_nb)
    assert [c.value for c in t.component_criteria()] == [3.0, 3.0]
    assert {c.name for c in t.geometry_criteria()} == {"neighbour_overlap", "kernel_components"}


def test_local_rbf_with_a_constant_polynomial_keeps_every_axis():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(80, 12)), rng.normal(size=(80, 2))
    assert PrincipalRBF(x, y, kernel="linear", smoothing=0.0, neighbors=10).axes_.shape[1] == 12
    # a thin plate spline's linear part needs more neighbours than axes: cut to neighbors // 2
    assert PrincipalRBF(x, y, kernel="thin_plate_spline", smoothing=0.0, neighbors=10).axes_.shape[1] == 5


def test_local_rbf_on_coinciding_nodes_names_the_fix():
    rng = np.random.default_rng(0)
    x = np.repeat(rng.normal(size=(10, 3)), 3, axis=0)  # every node three times
    rbf = PrincipalRBF(x, rng.normal(size=(30, 1)), kernel="linear", smoothing=0.0, neighbors=6)
    with pytest.raises(FitConfigError, match=r"coincide.*smoothing > 0"):
        rbf(x[:2] + 1e-3)
    smooth = PrincipalRBF(x, np.ones((30, 1)), kernel="linear", smoothing=1e-8, neighbors=6)
    np.testing.assert_allclose(smooth(x[:2] + 1e-3), 1.0, atol=1e-6)


def test_ridge_survives_save_and_load(tmp_path):
    t = fitted(0.5, saturating_layer(3))
    t.save(tmp_path / "t.npz")
    loaded = Transformation.load(tmp_path / "t.npz")
    assert loaded.covariance_ridge == 0.5
    x = saturating_layer(3)[0]
    np.testing.assert_allclose(loaded.predict(x[:5], to="b"), t.predict(x[:5], to="b"))


@FAST
@given(seed=st.integers(0, 2**32 - 1), local=st.booleans())
def test_predictions_do_not_depend_on_the_procrustes_alignment(seed, local):
    # The back map is fitted on the source's aligned coordinates of each sample. With a
    # radial kernel on principal axes, an orthogonal alignment changes nothing: what
    # A -> B predicts runs through A's diffusion coordinates only, and B's diffusion map
    # enters the diffusion residual alone. (Documented in the README, method step 8.)
    x, nb = clouds(seed, 50, 3, 25, scales=np.full(50, 0.3))
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(3, 4))
    kwargs = {"rbf_kernel": "linear", "rbf_neighbors": 10} if local else {}
    t = Transformation(5, epsilon_k=8, **kwargs).fit(x, nb, np.tanh(x @ w), np.tanh(nb @ w))
    probe = x[:8] + 0.01
    before = t.predict(probe, to="b")
    t.alignment_ab_ = np.eye(5)
    coords = t.side_a_.coordinates if local else t.embed_a_(t.side_a_.activations)
    t.to_b_ = t._rbf(coords, t.side_b_.activations)
    np.testing.assert_allclose(t.predict(probe, to="b"), before, atol=1e-8 * max(1.0, np.abs(before).max()))
