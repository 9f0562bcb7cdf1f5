"""Weight-space distances: closed forms, independent computations, properties, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from equivtest.criteria import CRITERIA, EquivalenceFailure
from equivtest.errors import EquivtestError
from equivtest import weights as W
from equivtest.weights import WeightSpaceError

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=64)


def vec_pair(min_size=1, max_size=40):
    return st.integers(min_size, max_size).flatmap(
        lambda n: st.tuples(arrays(np.float64, n, elements=finite), arrays(np.float64, n, elements=finite)))


ELEMENTWISE = [W.quantile_loss, W.mape, W.layerwise_mse, W.fft_l1]
DISTRIBUTIONAL = [W.norm_difference, W.jensen_shannon, W.wasserstein2, W.sinkhorn_w2, W.gromov_wasserstein,
                  W.bottleneck]
ALL = ELEMENTWISE + DISTRIBUTIONAL


# ----------------------------------------------------------------- closed forms and independent computations

def test_quantile_loss_by_hand():
    a, b = np.array([1.0, 0.0, 2.0]), np.array([0.0, 1.0, 2.0])  # u = [1, -1, 0]
    assert W.quantile_loss(a, b, 0.9) == pytest.approx((0.9 * 1 + 0.1 * 1 + 0) / 3)
    assert W.quantile_loss(a, b, 0.5) == pytest.approx(0.5 * np.mean(np.abs(a - b)))


@given(vec_pair(), st.floats(0.01, 0.99))
def test_quantile_loss_mirror(pair, q):
    a, b = pair
    assert W.quantile_loss(a, b, q) == pytest.approx(W.quantile_loss(b, a, 1 - q), abs=1e-12)


def test_norm_difference_by_hand():
    a, b = np.array([3.0, 4.0]), np.array([1.0, 0.0, 0.0])
    assert W.norm_difference(a, b) == pytest.approx(4.0)  # |5 - 1|
    assert W.norm_difference(a, b, ord=1) == pytest.approx(6.0)  # |7 - 1|
    assert W.norm_difference(a, b, ord=np.inf) == pytest.approx(3.0)


@given(vec_pair())
def test_norm_difference_reverse_triangle_and_sign_invariance(pair):
    a, b = pair
    assert W.norm_difference(a, b) <= np.linalg.norm(a - b) + 1e-9
    assert W.norm_difference(-a[::-1], b) == pytest.approx(W.norm_difference(a, b), abs=1e-9)


def test_mape_by_hand():
    a, b = np.array([1.1, 2.0, 0.5]), np.array([1.0, 4.0, 0.0])
    eps = 1e-3
    expected = 100 / 3 * (0.1 / (1 + eps) + 2 / (4 + eps) + 0.5 / eps)
    assert W.mape(a, b, epsilon=eps) == pytest.approx(expected)


def test_layerwise_mse_by_hand_and_from_a_module():
    a, b = np.zeros(5), np.array([1.0, 1.0, 1.0, 2.0, 0.0])
    # layers of 3 and 2: MSE 1 and 2
    assert W.layerwise_mse(a, b, [3, 2]) == pytest.approx(1.0 + 2.0)
    assert W.layerwise_mse(a, b) == pytest.approx(np.mean(b**2))  # one segment: plain MSE
    assert W.layerwise_mse(a, b, [3, 2], scales=[1.0, 2.0]) == pytest.approx(1.0 + 0.5)
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))  # 9 and 4 parameters
    other = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    va, vb = W.flatten_parameters(net)[0].double().numpy(), W.flatten_parameters(other)[0].double().numpy()
    by_hand = np.mean((va[:9] - vb[:9]) ** 2) + np.mean((va[9:] - vb[9:]) ** 2)
    assert W.layerwise_mse(net, other) == pytest.approx(by_hand)
    assert W.layerwise_mse(va, vb, W.flat_index(net)) == pytest.approx(by_hand)


def test_fft_l1_closed_forms_and_dft_matrix():
    n = 16
    a, b = np.zeros(n), np.zeros(n)
    a[5] = -2.5  # an impulse difference: |F| = 2.5 at every frequency
    assert W.fft_l1(a, b) == pytest.approx(2.5)
    assert W.fft_l1(np.full(n, 0.75), b) == pytest.approx(0.75)  # a constant offset: N c at k = 0
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=n), rng.normal(size=n)
    k = np.arange(n)
    dft = np.exp(-2j * np.pi * np.outer(k, k) / n)  # independent DFT
    assert W.fft_l1(x, y) == pytest.approx(np.mean(np.abs(dft @ (x - y))))
    assert W.fft_l1(np.roll(x, 3), np.roll(y, 3)) == pytest.approx(W.fft_l1(x, y))


def test_jensen_shannon_identical_disjoint_and_scipy():
    p = np.array([0.5, 0.5, 0.0, 0.0])
    q = np.array([0.0, 0.0, 0.3, 0.7])
    assert W.js_divergence(p, p) == 0.0
    assert W.js_divergence(p, q) == pytest.approx(np.log(2))
    a = np.array([0.0, 0.0, 1.0])
    b = np.array([10.0, 10.0, 11.0, 12.0])  # pooled range split into 2 bins: disjoint halves
    assert W.jensen_shannon(a, b, bins=2) == pytest.approx(np.log(2))
    assert W.jensen_shannon(a, a, bins=7) == 0.0
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=300), rng.normal(0.5, 1.3, size=200)
    hp, hq, edges = W.histograms(x, y, bins=20)
    assert edges[0] == min(x.min(), y.min()) and edges[-1] == max(x.max(), y.max())
    expected = scipy.spatial.distance.jensenshannon(hp, hq) ** 2  # natural log by default
    assert W.jensen_shannon(x, y, bins=20) == pytest.approx(expected)
    assert W.jensen_shannon(x, y, bins=20, distance=True) == pytest.approx(np.sqrt(expected))


def test_wasserstein2_gaussians_closed_form():
    # equal-size samples at the same standard-normal quantiles: the sorted difference is
    # (m1 - m2) + (s1 - s2) z_i, so W2^2 = (m1 - m2)^2 + (s1 - s2)^2 mean(z^2) exactly
    n = 1000
    z = scipy.stats.norm.ppf((np.arange(n) + 0.5) / n)
    m1, s1, m2, s2 = 0.3, 1.5, -0.2, 0.7
    rng = np.random.default_rng(2)
    a, b = rng.permutation(m1 + s1 * z), rng.permutation(m2 + s2 * z)
    exact = np.sqrt((m1 - m2) ** 2 + (s1 - s2) ** 2 * np.mean(z**2))
    assert W.wasserstein2(a, b) == pytest.approx(exact, rel=1e-12)
    gaussian = np.sqrt((m1 - m2) ** 2 + (s1 - s2) ** 2)  # the populations' closed form
    assert W.wasserstein2(a, b) == pytest.approx(gaussian, rel=1e-2)


def test_wasserstein2_unequal_sizes_matches_an_independent_solver():
    import ot

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=37), rng.normal(1.0, 2.0, size=53)
    assert W.wasserstein2(a, b) == pytest.approx(np.sqrt(ot.wasserstein_1d(a, b, p=2)), rel=1e-9)
    # and an exact linear programme on the full cost matrix
    cost = (a[:, None] - b[None, :]) ** 2
    lp = ot.emd2(np.full(37, 1 / 37), np.full(53, 1 / 53), cost)
    assert W.wasserstein2(a, b) == pytest.approx(np.sqrt(lp), rel=1e-7)
    # a vector repeated twice is the same distribution
    assert W.wasserstein2(a, np.concatenate([a, a])) == pytest.approx(0.0, abs=1e-12)


def test_sinkhorn_approaches_exact_w2_as_reg_shrinks():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=200), rng.normal(0.4, 0.6, size=150)
    exact = W.wasserstein2(a, b)
    errors = [W.sinkhorn_w2(a, b, reg=r) - exact for r in (1e-1, 1e-2, 1e-3)]
    assert all(e >= -1e-6 for e in errors)  # the regularised plan's cost is never below the optimum
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01 * exact
    assert W.sinkhorn_w2(a[::-1], b, reg=1e-2) == pytest.approx(W.sinkhorn_w2(a, b, reg=1e-2), rel=1e-9)
    assert W.sinkhorn_w2(b, a, reg=1e-2) == pytest.approx(W.sinkhorn_w2(a, b, reg=1e-2), rel=1e-6)


def test_sinkhorn_of_identical_vectors_is_its_entropic_bias():
    # the regularised plan spreads mass, so identical vectors do not give 0 (the exact
    # distance does); the bias shrinks with reg, which is why criteria state reg
    a = np.random.default_rng(11).normal(size=100)
    biases = [W.sinkhorn_w2(a, a, reg=r) for r in (1e-1, 1e-2, 1e-3)]
    assert biases[0] > biases[1] > biases[2] > 0.0
    # the entropic bias of W2^2 grows like eps log(1/eps), so W2's like its square root:
    # from reg 0.1 to 1e-3 that is a factor sqrt(1e-3 * 6.9 / (0.1 * 2.3)) = 0.17
    assert biases[2] < 0.2 * biases[0]


def test_gromov_wasserstein_two_points_by_hand_and_isometries():
    # {0, 1} vs {0, 2}: every coupling gives >= 0.5 (see the module docs), optimum 0.5
    assert W.gromov_wasserstein([0.0, 1.0], [0.0, 2.0]) == pytest.approx(0.5, abs=1e-9)
    rng = np.random.default_rng(5)
    x = rng.normal(size=40)
    assert W.gromov_wasserstein(x, -x + 3.0) == pytest.approx(0.0, abs=1e-10)  # reflection and shift
    assert W.gromov_wasserstein(x, rng.permutation(x)) == pytest.approx(0.0, abs=1e-10)
    assert W.gromov_wasserstein(x, 2.0 * x) > 1e-3  # scaling is not an isometry


def test_gromov_wasserstein_does_not_stop_at_a_local_optimum_for_a_reflection():
    # found by test_symmetric: conditional gradient from the product coupling alone gave 0.5
    # for this pair and 0 for the swapped one; b is a reflection of a, so both are 0
    a, b = [0.0, 1.0, 2.0, 2.0], [1.0, 2.0, 0.0, 0.0]
    assert W.gromov_wasserstein(a, b) == pytest.approx(0.0, abs=1e-12)
    assert W.gromov_wasserstein(b, a) == pytest.approx(0.0, abs=1e-12)


def test_gromov_wasserstein_is_at_most_any_permutation_coupling():
    # GW is a minimum over couplings; each permutation coupling is one of them (brute force)
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=5), rng.normal(size=5)
    dx, dy = np.abs(x[:, None] - x), np.abs(y[:, None] - y)
    best = min(np.mean((dx - dy[np.ix_(p, p)]) ** 2) for p in itertools.permutations(range(5)))
    assert W.gromov_wasserstein(x, y) <= best + 1e-9


def _h0_sublevel_pairs(w):
    """Independent 0-dim sublevel persistence of a function on a path, by union-find."""
    order = np.argsort(w, kind="stable")
    parent, birth, pairs = {}, {}, []

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in order:
        parent[i], birth[i] = i, w[i]
        for j in (i - 1, i + 1):
            if j in parent:
                ri, rj = find(i), find(j)
                if ri != rj:
                    young, old = (ri, rj) if birth[ri] > birth[rj] else (rj, ri)
                    if birth[young] < w[i]:
                        pairs.append((birth[young], w[i]))
                    parent[young] = old
    pairs.append((w.min(), np.inf))
    return sorted(pairs)


def test_persistence_diagram_matches_union_find():
    rng = np.random.default_rng(7)
    w = rng.normal(size=60)
    gudhi_pairs = sorted(map(tuple, W.persistence_diagram(w)))
    ours = _h0_sublevel_pairs(w)
    assert len(gudhi_pairs) == len(ours)
    np.testing.assert_allclose(np.array(gudhi_pairs), np.array(ours))


def test_bottleneck_by_hand():
    a = np.array([0.0, 2.0, 1.0, 3.0])  # sublevel H0: (1, 2) and (0, inf)
    b = np.array([0.0, 2.2, 1.0, 3.0])  # (1, 2.2) and (0, inf): matching (1,2)->(1,2.2) costs 0.2
    assert W.bottleneck(a, b, "sublevel") == pytest.approx(0.2)
    c = np.array([0.0, 3.0, 3.0, 3.0])  # only (0, inf): (1, 2) goes to the diagonal, cost 0.5
    assert W.bottleneck(a, c, "sublevel") == pytest.approx(0.5)


@settings(max_examples=40, deadline=None)
@given(vec_pair(2, 30))
def test_bottleneck_stability(pair):
    a, b = pair
    assert W.bottleneck(a, b) <= np.max(np.abs(a - b)) + 1e-9


def test_jacobian_frobenius_of_linear_maps_is_the_weight_difference():
    torch.manual_seed(0)
    la, lb = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    x = np.random.default_rng(8).normal(size=(7, 4))
    expected = torch.linalg.norm(la.weight.double() - lb.weight.double()).item()
    assert W.jacobian_frobenius(la, lb, x) == pytest.approx(expected, rel=1e-10)


def test_jacobian_frobenius_against_finite_differences():
    torch.manual_seed(1)
    na = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    nb = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)).double()
    x = np.random.default_rng(9).normal(size=(5, 3))
    h, total = 1e-6, 0.0
    with torch.no_grad():
        for row in x:
            jac = []
            for net in (na, nb):
                cols = []
                for j in range(3):
                    e = np.zeros(3)
                    e[j] = h
                    up, down = net(torch.tensor(row + e)[None]), net(torch.tensor(row - e)[None])
                    cols.append(((up - down) / (2 * h))[0].numpy())
                jac.append(np.stack(cols, axis=1))
            total += np.sum((jac[0] - jac[1]) ** 2)
    assert W.jacobian_frobenius(na, nb, x) == pytest.approx(np.sqrt(total / len(x)), rel=1e-6)
    assert W.jacobian_frobenius(na, na, x) == 0.0


# ----------------------------------------------------------------- properties of every measure

@settings(max_examples=25, deadline=None)
@given(vec_pair(2, 30))
@pytest.mark.parametrize("measure", [m for m in ALL if m is not W.sinkhorn_w2], ids=lambda f: f.__name__)
def test_zero_on_identical_and_non_negative(measure, pair):
    a, b = pair
    assert measure(a, a) == pytest.approx(0.0, abs=1e-7)
    assert measure(a, b) >= 0.0


SYMMETRIC = [W.norm_difference, W.layerwise_mse, W.fft_l1, W.jensen_shannon, W.wasserstein2, W.bottleneck,
             W.gromov_wasserstein]


@settings(max_examples=25, deadline=None)
@given(vec_pair(2, 30))
@pytest.mark.parametrize("measure", SYMMETRIC, ids=lambda f: f.__name__)
def test_symmetric(measure, pair):
    a, b = pair
    assert measure(a, b) == pytest.approx(measure(b, a), rel=1e-6, abs=1e-8)


PERMUTATION_INVARIANT = [W.norm_difference, W.jensen_shannon, W.wasserstein2, W.gromov_wasserstein]


@settings(max_examples=20, deadline=None)
@given(vec_pair(2, 30), st.randoms(use_true_random=False))
@pytest.mark.parametrize("measure", PERMUTATION_INVARIANT, ids=lambda f: f.__name__)
def test_distributional_measures_ignore_order(measure, pair, rnd):
    a, b = pair
    perm = list(range(len(a)))
    rnd.shuffle(perm)
    assert measure(a[perm], b) == pytest.approx(measure(a, b), rel=1e-6, abs=1e-8)


@settings(max_examples=25, deadline=None)
@given(vec_pair(2, 30), vec_pair(2, 30))
def test_w2_triangle_inequality(p1, p2):
    a, b = p1
    c = p2[0]
    assert W.wasserstein2(a, c) <= W.wasserstein2(a, b) + W.wasserstein2(b, c) + 1e-9


# ----------------------------------------------------------------- bad input

@pytest.mark.parametrize("measure", ELEMENTWISE, ids=lambda f: f.__name__)
def test_elementwise_measures_refuse_different_lengths(measure):
    with pytest.raises(WeightSpaceError, match="same architecture"):
        measure(np.ones(3), np.ones(4))


@pytest.mark.parametrize("measure", ALL, ids=lambda f: f.__name__)
@pytest.mark.parametrize("bad,message", [
    (np.array([]), "is empty"),
    (np.array([1.0, np.nan, 2.0]), "NaN first at index 1"),
    (np.array([1.0, 2.0, np.inf]), "inf first at index 2"),
    (["a", "b", "c"], "not numeric"),
])
def test_bad_vectors_are_refused_with_the_fix(measure, bad, message):
    good = np.ones(3)
    for args in ((bad, good), (good, bad)):
        with pytest.raises(WeightSpaceError, match=message) as info:
            measure(*args)
        assert isinstance(info.value, EquivtestError) and isinstance(info.value, ValueError)


def test_bad_options_are_refused():
    x = np.ones(4)
    with pytest.raises(WeightSpaceError, match="strictly between 0 and 1"):
        W.quantile_loss(x, x, 1.0)
    with pytest.raises(WeightSpaceError, match="epsilon must be a positive"):
        W.mape(x, x, epsilon=0)
    with pytest.raises(WeightSpaceError, match="covers 5 entries"):
        W.layerwise_mse(x, x, [2, 3])
    with pytest.raises(WeightSpaceError, match="one per layer"):
        W.layerwise_mse(x, x, [2, 2], scales=[1.0])
    with pytest.raises(WeightSpaceError, match="positive integer"):
        W.jensen_shannon(x, x, bins=0)
    with pytest.raises(WeightSpaceError, match="filtration"):
        W.bottleneck(x, x, "upward")
    with pytest.raises(WeightSpaceError, match="a norm"):
        W.norm_difference(x, x, ord=0.5)
    with pytest.raises(WeightSpaceError, match="two torch modules"):
        W.jacobian_frobenius(x, x, np.ones((2, 4)))
    lin = torch.nn.Linear(4, 2)
    with pytest.raises(WeightSpaceError, match="same input and output shapes"):
        W.jacobian_frobenius(lin, torch.nn.Linear(4, 3), np.ones((2, 4)))
    with pytest.raises(WeightSpaceError, match="NaN"):
        W.jacobian_frobenius(lin, lin, np.full((2, 4), np.nan))


# ----------------------------------------------------------------- flattening

def test_flatten_and_load_round_trip():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    vec, index = W.flatten_parameters(net)
    assert vec.numel() == index.size == sum(p.numel() for p in net.parameters())
    assert index.layers() == {"0": (0, 20), "2": (20, 47)}
    parts = index.split(vec)
    assert torch.equal(parts["2.weight"], net[2].weight.detach())
    other = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(8, 3))
    W.load_flat(other, vec, W.FlatIndex.from_dict(index.to_dict()))
    for p, q in zip(net.parameters(), other.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(WeightSpaceError, match="1-D vector of 47"):
        W.load_flat(other, vec[:-1])
    with pytest.raises(WeightSpaceError, match="does not describe this module"):
        W.load_flat(torch.nn.Linear(46, 1), vec, index)
    with pytest.raises(WeightSpaceError, match="NaN or inf"):
        W.load_flat(other, torch.full((47,), float("nan")))
    bad = index.to_dict()
    bad["slices"][1]["start"] += 1
    with pytest.raises(WeightSpaceError, match="inconsistent"):
        W.FlatIndex.from_dict(bad)


# ----------------------------------------------------------------- as criteria

def test_weight_criteria_are_registered_and_assertable():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    near = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    W.load_flat(near, W.flatten_parameters(net)[0] + 1e-4)
    x = np.random.default_rng(10).normal(size=(6, 3))
    found = W.weight_criteria(net, near, inputs=x)
    assert {c.name for c in found} == set(W.criteria.DEFAULT_MEASURES)
    for c in found:
        assert c.name in CRITERIA and CRITERIA[c.name][0] is False and not c.higher_is_better
    result = W.weight_result(net, near, inputs=x)
    result.assert_equivalent(weight_layerwise_mse=1e-6, weight_w2=1e-3, jacobian_frobenius=1e-2)
    far = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.ReLU(), torch.nn.Linear(5, 2))
    with pytest.raises(EquivalenceFailure, match="weight_layerwise_mse"):
        W.weight_result(net, far, measures=["weight_layerwise_mse"]).assert_equivalent(weight_layerwise_mse=1e-6)
    with pytest.raises(WeightSpaceError, match="same architecture"):
        W.weight_criteria(net, torch.nn.Linear(3, 2))
    with pytest.raises(WeightSpaceError, match="unknown weight measures"):
        W.weight_criteria(net, near, measures=["weight_l7"])
    with pytest.raises(WeightSpaceError, match="needs inputs"):
        W.weight_criteria(net, near, measures=["jacobian_frobenius"])


@pytest.mark.parametrize("module, distance", [
    ("ot", lambda a, b: W.sinkhorn_w2(a, b)),
    ("ot", lambda a, b: W.gromov_wasserstein(a, b)),
    ("gudhi", lambda a, b: W.bottleneck(a, b)),
])
def test_a_missing_optional_dependency_names_the_weights_extra(monkeypatch, module, distance):
    monkeypatch.setitem(__import__("sys").modules, module, None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'equivtest\[weights\]'"):
        distance(np.arange(5.0), np.arange(5.0) + 1)
