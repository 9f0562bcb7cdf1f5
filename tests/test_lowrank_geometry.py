"""Low-rank precision factors of each neighbourhood (issue "Real widths", parts 1 and 4).

Where a layer is at least as wide as the neighbourhood (F >= M) the factors come from the
thin SVD of the centred M x F activations (through their M x M Gram matrix), never from
an F x F covariance. Every test here compares them
with the dense path (``precision_factors(neighbourhood_covariances(nb))``), which is the
definition, written out in ``test_geometry.py`` against numpy's pinv and a double loop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equivtest.errors import FitConfigError
from equivtest.geometry import (
    DEFAULT_RCOND,
    mahalanobis_sq_dense,
    neighbourhood_covariances,
    precision_factors,
    pseudo_inverses,
)
from equivtest.geometry import covariance
from equivtest.geometry.covariance import neighbourhood_precision_factors, neighbourhood_spectra

FAST = settings(max_examples=25, deadline=None)


def prescribed(seed: int, n: int, m: int, f: int, ranks, spread: float = 10.0):
    """Samples and neighbourhoods whose centred activations are ``U diag(s) V^T`` by construction.

    ``s`` is drawn from [1, spread] for the first ``ranks[i]`` of the ``min(M - 1, F)``
    directions of sample i and is 1e-7 times that for the rest: the kept eigenvalues lie
    within spread^2 of each other (well conditioned, so the dense path is accurate to
    1e-13 as well), and the dropped ones 1e-12 below, far from any cut-off tried here.
    Also returned: each sample's precision by its definition, ``V (s^2 / (M - 1))^-1 V^T``
    over the kept directions (the ridge is added by the caller).
    """
    rng = np.random.default_rng(seed)
    k = min(m - 1, f)
    x = rng.normal(size=(n, f)) * 3.0
    nb, parts = np.empty((n, m, f)), []
    for i in range(n):
        # U: orthonormal columns orthogonal to the constant vector, so the mean is exactly x_i
        q, _ = np.linalg.qr(np.column_stack([np.ones(m), rng.normal(size=(m, k))]))
        v, _ = np.linalg.qr(rng.normal(size=(f, k)))
        s = rng.uniform(1.0, spread, size=k)
        s[int(ranks[i]) :] *= 1e-7
        nb[i] = x[i] + (q[:, 1 : k + 1] * s) @ v.T
        parts.append((s[: int(ranks[i])] ** 2 / (m - 1), v[:, : int(ranks[i])]))
    return x, nb, parts


def precision_by_definition(parts, ridge_absolute: float) -> np.ndarray:
    return np.stack([(v / (evals + ridge_absolute)) @ v.T for evals, v in parts])


def wide_layer(seed: int, n: int, m: int, f: int, latent: int = 3):
    """A tanh layer of width f driven by a latent input: curved, badly conditioned neighbourhoods."""
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=(latent, f)) * 1.5, rng.normal(size=f) * 0.5
    t = rng.uniform(-1, 1, size=(n, latent))
    t_nb = t[:, None, :] + 0.1 * rng.normal(size=(n, m, latent))
    return np.tanh(t @ w + b), np.tanh(t_nb @ w + b)


def normwise(a, b) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def dense_factors(nb, rcond=DEFAULT_RCOND, ridge=0.0):
    """Today's definition: F x F covariances, eigendecomposition, relative ridge."""
    cov = neighbourhood_covariances(nb)
    absolute = ridge * np.median(np.trace(cov, axis1=1, axis2=2) / cov.shape[1])
    return precision_factors(cov, rcond, absolute), absolute


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    m=st.integers(2, 12),
    extra=st.integers(0, 30),
    truncate=st.booleans(),
    rcond=st.sampled_from([DEFAULT_RCOND, 1e-3]),
    ridge=st.sampled_from([0.0, 0.1, 2.0]),
    chunk=st.sampled_from([1, 3, 4096]),
)
def test_wide_layers_give_todays_precisions_and_distances(seed, m, extra, truncate, rcond, ridge, chunk):
    # F >= M: the low-rank path. The same truncated precisions (the ridge relative to the same
    # median variance) and the same distances as the dense path and the definition, at 1e-10.
    f = m + extra
    ranks = np.random.default_rng(seed).integers(1, m, size=15) if truncate else np.full(15, m - 1)
    x, nb, parts = prescribed(seed, 15, m, f, ranks)
    dense, absolute = dense_factors(nb, rcond, ridge)
    low = neighbourhood_precision_factors(nb, rcond, chunk=chunk, ridge=ridge)
    assert low.shape == dense.shape == (15, f, ranks.max())
    expected = precision_by_definition(parts, absolute)
    assert normwise(pseudo_inverses(low), expected) < 1e-10
    assert normwise(pseudo_inverses(dense), expected) < 1e-10
    d_low, d_dense = mahalanobis_sq_dense(x, low), mahalanobis_sq_dense(x, dense)
    np.testing.assert_allclose(d_low, d_dense, rtol=1e-10, atol=1e-10 * d_dense.max())


@pytest.mark.parametrize("seed,m,f", [(1, 20, 40), (2, 30, 30), (3, 30, 200)])
def test_wide_badly_conditioned_layers_truncate_as_numpy_pinv(seed, m, f):
    # A smooth layer of a 3-d input: eigenvalues fall off to rounding noise, and the default
    # rcond cuts them. As the dense path's own test (test_geometry.py): numpy's pinv at 1e-8.
    _, nb = wide_layer(seed, 12, m, f)
    cov = neighbourhood_covariances(nb)
    evals = np.linalg.eigvalsh(cov)
    ratio = evals / evals[:, -1:]
    kept = ratio > DEFAULT_RCOND
    assert kept.sum(axis=1).max() < m - 2  # truncation bites inside the span of every neighbourhood
    assert np.all(np.abs(ratio - DEFAULT_RCOND) > 1e-3 * DEFAULT_RCOND)  # none at the cut
    low = neighbourhood_precision_factors(nb)
    assert low.shape == (12, f, kept.sum(axis=1).max())
    p = pseudo_inverses(low)
    for i in range(12):
        assert normwise(p[i], np.linalg.pinv(cov[i], rcond=DEFAULT_RCOND, hermitian=True)) < 1e-8


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    f=st.integers(1, 8),
    extra=st.integers(1, 30),
    rcond=st.sampled_from([0.0, DEFAULT_RCOND, 1e-3]),
    ridge=st.sampled_from([0.0, 0.5]),
)
def test_cpu_and_torch_routes_agree_where_the_layer_is_narrow(seed, f, extra, rcond, ridge):
    # F < M: the CPU takes numpy's eigendecomposition of the covariance (today's
    # computation), a device torch's. Both give the same factors and the definition's.
    m = f + extra
    x, nb, parts = prescribed(seed, 12, m, f, np.full(12, f))  # rcond 0: keep all, so no 1e-7 directions
    by_cov = neighbourhood_spectra(nb)
    by_torch = covariance._gram_spectra(nb, torch.device("cpu"))
    assert by_torch[0].shape == by_cov[0].shape == (12, f)
    np.testing.assert_allclose(by_torch[0], by_cov[0], rtol=1e-12)
    np.testing.assert_allclose(by_torch[2], by_cov[2], rtol=1e-12)
    # through the factors: the CPU route is the dense path itself, and torch's agrees
    low = neighbourhood_precision_factors(nb, rcond, ridge=ridge)
    dense, absolute = dense_factors(nb, rcond, ridge)
    assert np.array_equal(low, dense)
    evals, evecs, _ = by_torch
    via_torch = covariance._scaled(evals, evecs, covariance._kept(evals, rcond), absolute)
    assert normwise(pseudo_inverses(via_torch), pseudo_inverses(low)) < 1e-10
    assert normwise(pseudo_inverses(via_torch), precision_by_definition(parts, absolute)) < 1e-10


def test_the_ridge_leaves_directions_outside_the_neighbourhood_at_zero_precision():
    # The ridge is added to kept eigenvalues only; the F - M + 1 directions a neighbourhood
    # of M points does not span have eigenvalue 0 and are dropped, ridge or not. So the
    # dense precision has rank <= M - 1 too, and the low-rank factor loses nothing.
    x, nb, _ = prescribed(3, 6, 8, 40, np.full(6, 7))
    plain = pseudo_inverses(neighbourhood_precision_factors(nb))
    for ridge in (0.0, 1.0, 100.0):
        dense = pseudo_inverses(dense_factors(nb, ridge=ridge)[0])
        low = neighbourhood_precision_factors(nb, ridge=ridge)
        assert low.shape[2] == 7
        for i in range(len(nb)):
            outside = np.linalg.svd(nb[i] - nb[i].mean(axis=0))[2][7:].T  # 33 directions it does not span
            assert np.abs(dense[i] @ outside).max() < 1e-10 * np.abs(dense[i]).max()
            assert np.abs(low[i].T @ outside).max() < 1e-10 * np.abs(low[i]).max()
        assert normwise(pseudo_inverses(low), dense) < 1e-10
        if ridge:  # and it does act on the kept directions
            assert normwise(pseudo_inverses(low), plain) > 0.1


def test_wide_layers_never_form_a_feature_by_feature_matrix(monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("an F x F covariance or its eigendecomposition was computed")

    _, nb, _ = prescribed(0, 5, 16, 300, np.full(5, 15))
    monkeypatch.setattr(covariance, "neighbourhood_covariances", refused)
    monkeypatch.setattr(covariance, "_batched_eigh", refused)
    factors = neighbourhood_precision_factors(nb, ridge=0.5)
    assert factors.shape == (5, 300, 15)
    monkeypatch.undo()
    assert normwise(pseudo_inverses(factors), pseudo_inverses(dense_factors(nb, ridge=0.5)[0])) < 1e-10


def test_factor_width_is_the_largest_kept_rank_with_lower_ranks_zero_padded():
    ranks = np.array([3, 1, 5, 2, 5, 4, 1, 2, 3])
    _, nb, _ = prescribed(5, 9, 12, 30, ranks)
    factors = neighbourhood_precision_factors(nb, chunk=4)  # chunks of widths 5, 5 and 3
    assert factors.shape == (9, 30, 5)
    for i in range(9):
        nonzero = np.flatnonzero(np.abs(factors[i]).max(axis=0) > 0)
        assert nonzero.tolist() == list(range(5 - ranks[i], 5))


@pytest.mark.parametrize("value", [0.0, 0.1, -2.5])
def test_a_constant_wide_neighbourhood_is_refused_naming_its_sample(value):
    _, nb, _ = prescribed(1, 9, 6, 20, np.full(9, 5))
    nb[7] = value
    with pytest.raises(FitConfigError, match="sample 7 has zero covariance"):
        neighbourhood_precision_factors(nb, chunk=4)  # sample 7 is the 4th of the second chunk


def test_a_neighbourhood_of_one_point_is_refused_on_the_low_rank_path():
    with pytest.raises(FitConfigError, match="at least 2"):
        neighbourhood_precision_factors(np.ones((3, 1, 10)))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("m,f", [(16, 200), (40, 12)])
def test_cuda_factors_equal_the_cpu_ones(m, f):
    x, nb, _ = prescribed(6, 50, m, f, np.full(50, min(m - 1, f)))
    cpu = neighbourhood_precision_factors(nb, ridge=0.3)
    gpu = neighbourhood_precision_factors(nb, ridge=0.3, device="cuda")
    assert isinstance(gpu, np.ndarray) and gpu.shape == cpu.shape
    assert normwise(pseudo_inverses(gpu), pseudo_inverses(cpu)) < 1e-10
    np.testing.assert_allclose(
        mahalanobis_sq_dense(x, gpu, "cuda"), mahalanobis_sq_dense(x, cpu), rtol=1e-10, atol=1e-12
    )
