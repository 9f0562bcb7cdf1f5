"""Reference similarity measures: linear CKA, Procrustes shape distance, linear stitching."""

import copy
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import orthogonal_procrustes
from sklearn.linear_model import LinearRegression, Ridge

from equivtest.capture import LayerSpec, capture
from equivtest.errors import ActivationError, EquivtestError, FitConfigError, LayerNotFoundError, NotFittedError
from equivtest.measures import LinearCKA, LinearStitch, ProcrustesDistance, linear_stitch_outputs
from equivtest.layers import fill_unpredicted
from tests._nets import random_orthogonal, tanh_mlp

SEEDS = st.integers(0, 2**32 - 1)
PROPERTY = settings(max_examples=25, deadline=None)


def gaussian(seed, n, f, *, scale=1.0):
    return np.random.default_rng(seed).standard_normal((n, f)) * scale


# -- independent reference implementations ------------------------------------------------


def cka_gram_reference(x, y):
    """tr(K H L H) / sqrt(tr(K H K H) tr(L H L H)) with raw (uncentred) linear Gram matrices."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def unbiased_hsic_gram(x, y):
    """Song et al. (2012) eq. 5, written out with Gram matrices of the raw data."""
    n = len(x)
    k, l_ = x @ x.T, y @ y.T
    np.fill_diagonal(k, 0.0)
    np.fill_diagonal(l_, 0.0)
    one = np.ones(n)
    return (
        np.trace(k @ l_) + (one @ k @ one) * (one @ l_ @ one) / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (one @ k @ l_ @ one)
    ) / (n * (n - 3))


def unbiased_hsic_ustatistic(x, y):
    """The U-statistic HSIC_1 is: the mean over ordered distinct (i, j, q, r) of
    k_ij l_ij + k_ij l_qr - 2 k_ij l_iq (Song et al. 2012, theorem 2)."""
    k, l_ = x @ x.T, y @ y.T
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(len(x)), 4):
        total += k[i, j] * l_[i, j] + k[i, j] * l_[q, r] - 2.0 * k[i, j] * l_[i, q]
        count += 1
    return total / count


def debiased_cka_reference(x, y, hsic):
    return hsic(x, y) / np.sqrt(hsic(x, x) * hsic(y, y))


def normalised(x, width):
    x = x - x.mean(axis=0)
    x = x / np.linalg.norm(x)
    return np.hstack([x, np.zeros((len(x), width - x.shape[1]))])


# -- linear CKA ---------------------------------------------------------------------------


@PROPERTY
@given(seed=SEEDS, n=st.integers(12, 80), fx=st.integers(1, 8), fy=st.integers(1, 8), debiased=st.booleans())
def test_cka_is_one_for_a_rotated_scaled_shifted_copy_and_invariant_for_any_partner(seed, n, fx, fy, debiased):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((n, fx)), rng.standard_normal((n, fy)) + rng.standard_normal() * 3
    q, scale, shift = random_orthogonal(fy, rng), 10 ** rng.uniform(-3, 3), rng.standard_normal(fy) * 5
    cka = LinearCKA(debiased=debiased)
    assert cka.fit(x, x).score_ == pytest.approx(1.0, abs=1e-12)
    rotated = x @ random_orthogonal(fx, rng) * scale + rng.standard_normal(fx)
    assert cka.fit(x, rotated).score_ == pytest.approx(1.0, abs=1e-10)
    base = cka.fit(x, y).score_
    assert cka.fit(x, y @ q).score_ == pytest.approx(base, abs=1e-10)
    assert cka.fit(x, y * scale).score_ == pytest.approx(base, abs=1e-10)
    assert cka.fit(x, y + shift).score_ == pytest.approx(base, abs=1e-10)
    assert cka.fit(x, y[:, rng.permutation(fy)]).score_ == pytest.approx(base, abs=1e-12)
    assert cka.fit(y, x).score_ == pytest.approx(base, abs=1e-12)


@PROPERTY
@given(seed=SEEDS, n=st.integers(4, 60), fx=st.integers(1, 12), fy=st.integers(1, 12))
def test_plain_cka_matches_the_gram_matrix_formula(seed, n, fx, fy):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fx)) + rng.standard_normal(fx) * 4  # uncentred on purpose
    y = x[:, :1] ** 2 @ rng.standard_normal((1, fy)) + rng.standard_normal((n, fy))
    expected = cka_gram_reference(x, y)
    for method in ("features", "gram", "auto"):
        fitted = LinearCKA(method=method).fit(x, y)
        assert fitted.score_ == pytest.approx(expected, abs=1e-8)
        assert fitted.method_ == method if method != "auto" else fitted.method_ in ("features", "gram")


@PROPERTY
@given(seed=SEEDS, n=st.integers(8, 60), fx=st.integers(1, 12), fy=st.integers(1, 12))
def test_debiased_cka_matches_the_unbiased_hsic_formula_on_gram_matrices(seed, n, fx, fy):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fx)) + rng.standard_normal(fx) * 4
    y = np.tanh(x[:, :1]) @ rng.standard_normal((1, fy)) + 0.5 * rng.standard_normal((n, fy))
    hxx, hyy = unbiased_hsic_gram(x, x), unbiased_hsic_gram(y, y)
    if hxx <= 0 or hyy <= 0:  # debiased CKA undefined: checked in the error tests
        return
    expected = debiased_cka_reference(x, y, unbiased_hsic_gram)
    for method in ("features", "gram"):
        fitted = LinearCKA(debiased=True, method=method).fit(x, y)
        assert fitted.score_ == pytest.approx(expected, abs=1e-8)
        assert fitted.hsic_xy_ == pytest.approx(unbiased_hsic_gram(x, y), rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_debiased_cka_matches_the_u_statistic_over_all_quadruples(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((7, 3)), rng.standard_normal((7, 2))
    y[:, 0] += x[:, 0]
    fitted = LinearCKA(debiased=True).fit(x, y)
    assert fitted.hsic_xy_ == pytest.approx(unbiased_hsic_ustatistic(x, y), rel=1e-10)
    assert fitted.hsic_xx_ == pytest.approx(unbiased_hsic_ustatistic(x, x), rel=1e-10)
    assert fitted.score_ == pytest.approx(debiased_cka_reference(x, y, unbiased_hsic_ustatistic), abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cka_of_independent_data_is_small_and_debiasing_removes_the_bias(seed):
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal((2000, 5)), rng.standard_normal((2000, 5))
    assert 0 <= LinearCKA().fit(x, y).score_ < 0.2
    assert abs(LinearCKA(debiased=True).fit(x, y).score_) < 0.05
    # with few samples per feature the plain estimate is far from 0 and the debiased one is not
    x, y = rng.standard_normal((40, 20)), rng.standard_normal((40, 20))
    plain, debiased = LinearCKA().fit(x, y).score_, LinearCKA(debiased=True).fit(x, y).score_
    assert plain > 0.3
    assert abs(debiased) < plain / 3


def test_cka_of_dependent_data_is_large():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2000, 5))
    y = x @ rng.standard_normal((5, 7)) + 0.1 * rng.standard_normal((2000, 7))
    assert LinearCKA().fit(x, y).score_ > 0.5
    assert LinearCKA(debiased=True).fit(x, y).score_ > 0.5


def test_cka_scales_to_many_samples_in_feature_space():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((100_000, 12))
    y = np.tanh(x[:, :6]) + 0.5 * rng.standard_normal((100_000, 6))
    for debiased in (False, True):
        fitted = LinearCKA(debiased=debiased).fit(x, y)
        assert fitted.method_ == "features"
        assert fitted.n_samples_ == 100_000
        assert 0.05 < fitted.score_ < 1


# -- Procrustes shape distance ------------------------------------------------------------


@PROPERTY
@given(seed=SEEDS, n=st.integers(3, 60), fx=st.integers(1, 8), extra=st.integers(0, 4))
def test_procrustes_is_zero_for_a_rotated_scaled_shifted_or_embedded_copy(seed, n, fx, extra):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fx)) * 3 + rng.standard_normal(fx)
    scale = 10 ** rng.uniform(-3, 3)
    copies = [
        x @ random_orthogonal(fx, rng) * scale + rng.standard_normal(fx) * 7,
        # into a wider space: orthonormal rows, i.e. a rotation of the zero-padded copy
        x @ random_orthogonal(fx + extra, rng)[:fx] * scale,
    ]
    for y in copies:
        for a, b in ((x, y), (y, x)):
            fitted = ProcrustesDistance().fit(a, b)
            assert fitted.score_ == pytest.approx(0.0, abs=1e-10)
            assert fitted.euclidean_distance_ == pytest.approx(0.0, abs=1e-10)
            assert fitted.similarity_ == pytest.approx(1.0, abs=1e-12)


@PROPERTY
@given(
    seed=SEEDS, n=st.integers(3, 60), widths=st.tuples(*[st.integers(1, 6)] * 3),
    noise=st.tuples(*[st.floats(0.0, 3.0)] * 2),
)
def test_procrustes_is_a_metric_symmetric_with_the_triangle_inequality(seed, n, widths, noise):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, widths[0]))
    # correlated triples, so that the three distances are comparable and the inequality is tight
    y = x @ rng.standard_normal((widths[0], widths[1])) + noise[0] * rng.standard_normal((n, widths[1]))
    z = y @ rng.standard_normal((widths[1], widths[2])) + noise[1] * rng.standard_normal((n, widths[2]))
    if any(np.ptp(m, axis=0).max() < 1e-6 for m in (x, y, z)):
        return
    d = {}
    for (name_a, a), (name_b, b) in itertools.permutations((("x", x), ("y", y), ("z", z)), 2):
        fitted = ProcrustesDistance().fit(a, b)
        d[name_a + name_b] = (fitted.angular_distance_, fitted.euclidean_distance_)
        assert 0.0 <= fitted.score_ <= np.pi / 2
    # rounding: distances near 0 are accurate to about 1e-12 absolute (seen: 1.3e-12 at 2.8e-7)
    for pair in ("xy", "xz", "yz"):
        assert d[pair] == pytest.approx(d[pair[::-1]], abs=1e-10)
    for kind in (0, 1):
        assert d["xz"][kind] <= d["xy"][kind] + d["yz"][kind] + 1e-10
        assert d["xy"][kind] <= d["xz"][kind] + d["zy"][kind] + 1e-10
        assert d["yz"][kind] <= d["yx"][kind] + d["xz"][kind] + 1e-10


@PROPERTY
@given(seed=SEEDS, n=st.integers(3, 80), fx=st.integers(1, 8), fy=st.integers(1, 8))
def test_procrustes_matches_scipy_and_an_eigenvalue_nuclear_norm(seed, n, fx, fy):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fx)) + 2.0
    y = rng.standard_normal((n, fy)) - 1.0
    width = max(fx, fy)
    xn, yn = normalised(x, width), normalised(y, width)
    rotation, nuclear = orthogonal_procrustes(xn, yn)  # nuclear norm of xn^T yn
    m = xn[:, :fx].T @ yn[:, :fy]
    eig = np.linalg.eigvalsh(m.T @ m if fy <= fx else m @ m.T)  # singular values squared
    if eig.min() > 1e-10:  # sqrt of a rounding residue near 0 would be off by up to 1e-8 each
        assert nuclear == pytest.approx(np.sqrt(eig).sum(), abs=1e-8)  # tr sqrt(M^T M)
    fitted = ProcrustesDistance().fit(x, y)
    assert fitted.similarity_ == pytest.approx(nuclear, abs=1e-10)
    assert fitted.euclidean_distance_ == pytest.approx(np.linalg.norm(xn @ rotation - yn), abs=1e-8)
    assert fitted.euclidean_distance_ == pytest.approx(np.sqrt(max(2 - 2 * nuclear, 0)), abs=1e-7)
    if nuclear < 1 - 1e-6:  # arccos loses half the digits at 1; away from it, 1e-8
        assert fitted.score_ == pytest.approx(np.arccos(nuclear), abs=1e-8)
    np.testing.assert_allclose(fitted.rotation_ @ fitted.rotation_.T, np.eye(width), atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_procrustes_of_single_columns_is_the_angle_of_their_correlation(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((50, 1))
    y = -0.7 * x + rng.standard_normal((50, 1))
    r = np.corrcoef(x[:, 0], y[:, 0])[0, 1]
    assert ProcrustesDistance().fit(x, y).score_ == pytest.approx(np.arccos(abs(r)), abs=1e-10)


def test_procrustes_of_independent_data_is_near_a_right_angle():
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((2000, 3)), rng.standard_normal((2000, 3))
    assert ProcrustesDistance().fit(x, y).score_ > 1.4


# -- linear stitching ---------------------------------------------------------------------


@PROPERTY
@given(seed=SEEDS, n=st.integers(10, 80), fx=st.integers(1, 8), fy=st.integers(1, 8))
def test_linear_stitch_recovers_an_exact_affine_map(seed, n, fx, fy):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fx)) * 2 + rng.standard_normal(fx)
    w, b = rng.standard_normal((fx, fy)), rng.standard_normal(fy) * 3
    fitted = LinearStitch().fit(x, x @ w + b)
    np.testing.assert_allclose(fitted.coef_, w, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fitted.intercept_, b, rtol=0, atol=1e-10)
    new = rng.standard_normal((20, fx))
    np.testing.assert_allclose(fitted.predict(new), new @ w + b, rtol=0, atol=1e-10)
    assert fitted.score_ == pytest.approx(1.0, abs=1e-12)
    assert fitted.mse_ < 1e-20


@pytest.mark.parametrize("ridge", [0.0, 0.5, 30.0])
@pytest.mark.parametrize("seed", [0, 1])
def test_linear_stitch_matches_scikit_learn(ridge, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((60, 5)) + 1.0
    y = np.sin(x @ rng.standard_normal((5, 3))) + 0.1 * rng.standard_normal((60, 3))
    fitted = LinearStitch(ridge=ridge).fit(x, y)
    reference = (Ridge(alpha=ridge) if ridge else LinearRegression()).fit(x, y)
    np.testing.assert_allclose(fitted.coef_, reference.coef_.T, rtol=0, atol=1e-8)
    np.testing.assert_allclose(fitted.intercept_, reference.intercept_, rtol=0, atol=1e-8)
    r2 = 1 - np.sum((reference.predict(x) - y) ** 2) / np.sum((y - y.mean(axis=0)) ** 2)
    assert fitted.score_ == pytest.approx(r2, abs=1e-8)
    assert fitted.score_ < 1


TRAIN = np.linspace(-1.0, 1.0, 400)[:, None]
TEST = np.random.default_rng(0).uniform(-1.0, 1.0, (300, 1))


def net_outputs(net, x):
    return net(torch.from_numpy(x)).detach().numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stitching_a_network_with_itself_reproduces_its_outputs(seed):
    net = tanh_mlp(seed)
    acts = capture(net, TRAIN, "act2")
    for target in (net, copy.deepcopy(net)):
        out = linear_stitch_outputs(net, target, "act2", "act2", acts, acts, TEST)
        np.testing.assert_allclose(out, net_outputs(net, TEST), rtol=0, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_stitched_output_is_the_target_head_on_the_mapped_activations_and_worse_than_exact(seed):
    # A's layer is 2 wide, B's 8: B's activation curve is a nonlinear function of A's
    # (with 8 wide layers on both sides a linear map fits a 1-d curve to within 1e-12)
    a, b = tanh_mlp(10 + seed, widths=(1, 2, 2, 1)), tanh_mlp(20 + seed)
    acts_a, acts_b = capture(a, TRAIN, "act2"), capture(b, TRAIN, "act2")
    out = linear_stitch_outputs(a, b, "act2", "act2", acts_a, acts_b, TEST)
    mapped = LinearStitch().fit(acts_a, acts_b).predict(capture(a, TEST, "act2"))
    np.testing.assert_allclose(out, b.out(torch.from_numpy(mapped)).detach().numpy(), rtol=0, atol=1e-12)
    # positive control: a linear map is not exact here, unlike the network against itself
    truth = net_outputs(b, TEST)
    self_stitched = linear_stitch_outputs(b, b, "act2", "act2", acts_b, acts_b, TEST)
    assert np.mean((self_stitched - truth) ** 2) < 1e-20
    assert np.mean((out - truth) ** 2) > 1e-7  # measured 1.7e-5 and 1.1e-5
    assert LinearStitch().fit(acts_a, acts_b).score_ < 0.9999


def test_linear_stitch_feeds_the_target_its_mapped_inputs_and_selected_neurons():
    a, b = tanh_mlp(30), tanh_mlp(31, widths=(2, 8, 8, 1))

    def to_b(x):
        return np.hstack([x, x**2])

    layer_b = LayerSpec("act2", neurons=[0, 3, 5, 6, 7, 1, 2, 4])  # all of them, shuffled
    acts_a, acts_b = capture(a, TRAIN, "act2"), capture(b, to_b(TRAIN), layer_b)
    out = linear_stitch_outputs(a, b, "act2", layer_b, acts_a, acts_b, TEST, target_input_map=to_b, ridge=1e-3)
    mapped = LinearStitch(ridge=1e-3).fit(acts_a, acts_b).predict(capture(a, TEST, "act2"))
    manual = b.out(torch.from_numpy(fill_unpredicted(mapped, layer_b.neurons, 8))).detach().numpy()
    np.testing.assert_allclose(out, manual, rtol=0, atol=1e-12)
    with pytest.raises(EquivtestError, match="domain_map"):  # without the map B gets 1-d inputs it cannot take
        linear_stitch_outputs(a, b, "act2", layer_b, acts_a, acts_b, TEST)


# -- bad input ----------------------------------------------------------------------------

MEASURES = [LinearCKA(), LinearCKA(debiased=True), ProcrustesDistance(), LinearStitch()]


@pytest.mark.parametrize("measure", MEASURES, ids=repr)
def test_mismatched_sample_counts_are_refused(measure):
    with pytest.raises(ActivationError, match="X has 20 rows .* Y has 19"):
        measure.fit(gaussian(0, 20, 3), gaussian(1, 19, 3))


@pytest.mark.parametrize("measure", MEASURES, ids=repr)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_activations_are_refused(measure, bad):
    x = gaussian(0, 20, 3)
    x[4, 1] = bad
    with pytest.raises(ActivationError, match="non-finite"):
        measure.fit(x, gaussian(1, 20, 3))
    with pytest.raises(ActivationError, match="non-finite"):
        measure.fit(gaussian(1, 20, 3), x)


@pytest.mark.parametrize("measure", MEASURES, ids=repr)
def test_wrong_rank_and_empty_activations_are_refused(measure):
    with pytest.raises(ActivationError, match="2 dimensions"):
        measure.fit(np.zeros(20), gaussian(1, 20, 3))
    with pytest.raises(ActivationError, match="empty"):
        measure.fit(np.zeros((0, 3)), np.zeros((0, 3)))


@pytest.mark.parametrize(("measure", "n_min"), [(LinearCKA(), 2), (LinearCKA(debiased=True), 4), (ProcrustesDistance(), 2)])
def test_too_few_samples_are_refused(measure, n_min):
    with pytest.raises(ActivationError, match=f"at least {n_min} samples"):
        measure.fit(gaussian(0, n_min - 1, 3), gaussian(1, n_min - 1, 3))
    measure.fit(gaussian(2, n_min + 4, 3), gaussian(3, n_min + 4, 3))  # enough


@pytest.mark.parametrize("measure", MEASURES[:3], ids=repr)
def test_constant_activations_are_refused(measure):
    constant = np.full((20, 3), 0.1)
    with pytest.raises(ActivationError, match="no variance"):
        measure.fit(constant, gaussian(1, 20, 3))
    with pytest.raises(ActivationError, match="no variance"):
        measure.fit(gaussian(1, 20, 3), np.zeros((20, 2)))


@pytest.mark.parametrize("odd_one_out", [[0.0, 0, 0, 1], [0.1, 0.1, 0.1, 0.1, 0.1, 0.7], [2.0, 5, 5, 5, 5]])
def test_debiased_cka_refuses_a_vanishing_self_hsic(odd_one_out):
    # all samples but one equal: the U-centred Gram matrix, whose squared norm HSIC_1(K, K)
    # is, vanishes (computed: 0 or a rounding residue of either sign)
    x = np.array(odd_one_out)[:, None]
    assert abs(unbiased_hsic_gram(x, x)) < 1e-10 * np.sum((x @ x.T) ** 2)
    with pytest.raises(ActivationError, match="zero up to rounding"):
        LinearCKA(debiased=True).fit(x, gaussian(0, len(x), 2))
    with pytest.raises(ActivationError, match="zero up to rounding"):
        LinearCKA(debiased=True).fit(gaussian(0, len(x), 2), np.hstack([x, 3 * x]))
    LinearCKA().fit(x, gaussian(0, len(x), 2))  # the plain estimator is defined


@pytest.mark.parametrize("ridge", [-1.0, np.nan, np.inf])
def test_linear_stitch_refuses_a_bad_ridge(ridge):
    with pytest.raises(FitConfigError, match="ridge"):
        LinearStitch(ridge=ridge).fit(gaussian(0, 10, 2), gaussian(1, 10, 2))


def test_linear_stitch_predict_needs_a_fit_and_the_fitted_width():
    with pytest.raises(NotFittedError, match="fit"):
        LinearStitch().predict(gaussian(0, 5, 2))
    fitted = LinearStitch().fit(gaussian(0, 10, 2), gaussian(1, 10, 3))
    with pytest.raises(ActivationError, match="fitted on 2"):
        fitted.predict(gaussian(0, 5, 4))


def test_unknown_cka_method_is_refused():
    with pytest.raises(FitConfigError, match="method"):
        LinearCKA(method="fast").fit(gaussian(0, 10, 2), gaussian(1, 10, 2))


def test_linear_stitch_outputs_refuses_bad_layers_and_widths():
    a, b = tanh_mlp(40), tanh_mlp(41)
    acts = capture(a, TRAIN, "act2")
    with pytest.raises(LayerNotFoundError, match="act9"):
        linear_stitch_outputs(a, b, "act2", "act9", acts, acts, TEST)
    with pytest.raises(EquivtestError, match="select the same neurons"):
        linear_stitch_outputs(a, b, "act2", "act2", acts, acts[:, :5], TEST)
