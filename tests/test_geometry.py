"""Properties of the neighbourhood geometry: covariances, Mahalanobis kernel, diffusion maps.

Each test checks a property that a plausible mistake would break (a wrong factor of
two, a missing truncation, an expanded quadratic form, a non-symmetric sparse pattern,
an unsorted spectrum, ...), mostly against a plain reference written out here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse
from hypothesis import given, settings
from hypothesis import strategies as st

from equivtest.errors import ActivationError, FitConfigError
from equivtest.geometry import (
    DEFAULT_RCOND,
    diffusion_coordinates,
    gaussian_kernel,
    mahalanobis_sq_dense,
    mahalanobis_sq_knn,
    median_knn_epsilon,
    nearest_samples,
    neighbour_overlap,
    neighbourhood_covariances,
    precision_factors,
    pseudo_inverses,
)

# Small sizes throughout: datafold's experimental kernel loops in Python.
FAST = settings(max_examples=25, deadline=None)


# --------------------------------------------------------------------------- helpers


def gaussian_cloud(seed: int, n: int, f: int, m: int, spread: float = 0.3, aniso: float = 1.0):
    """Samples in R^f and Gaussian neighbourhoods around them: well-conditioned covariances."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, f))
    # Anisotropic neighbourhoods so the Mahalanobis metric differs from the Euclidean one.
    shape = (rng.normal(size=(n, f, f)) * aniso + np.eye(f)) * spread
    nb = x[:, None, :] + np.einsum("nmf,ngf->nmg", rng.normal(size=(n, m, f)), shape)
    return x, nb


def tanh_layer(seed: int, n: int, m: int, delta: float, width: int = 8):
    """An 8-wide tanh layer driven by a 1-d input: neighbourhood covariances of rank ~1.

    Their eigenvalues fall off like delta**(2k), down to rounding noise (1e-17 of the
    largest): the badly conditioned case the truncated pseudo-inverse is there for.
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(size=width) * 2.0
    b = rng.normal(size=width)
    t = rng.uniform(-2.0, 2.0, size=n)
    t_nb = t[:, None] + delta * rng.normal(size=(n, m))
    return np.tanh(t[:, None] * w + b), np.tanh(t_nb[..., None] * w + b)


def reference_sq_distances(x, p):
    """Straight double loop over 1/2 (xi-xj)^T (Pi+Pj) (xi-xj)."""
    n = len(x)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d = x[i] - x[j]
            out[i, j] = 0.5 * d @ (p[i] + p[j]) @ d
    return out


def stored_entries(matrix) -> dict[tuple[int, int], float]:
    """{(i, j): value} of every explicitly stored entry of a sparse matrix (zeros included)."""
    coo = matrix.tocoo()
    return {(int(i), int(j)): float(v) for i, j, v in zip(coo.row, coo.col, coo.data)}


def rel_err(a, b) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# --------------------------------------------------------------------------- 1. dense distances


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(2, 25),
    f=st.integers(1, 6),
    m=st.integers(2, 20),
    rcond=st.sampled_from([0.0, 1e-10, DEFAULT_RCOND, 1e-2]),
)
def test_dense_sq_distances_match_double_loop_reference(seed, n, f, m, rcond):
    # The whitened-GEMM implementation must equal the textbook formula, including when
    # m <= f (rank-deficient covariances, zero-padded factors) and with heavy truncation.
    x, nb = gaussian_cloud(seed, n, f, m)
    factors = precision_factors(neighbourhood_covariances(nb), rcond)
    expected = reference_sq_distances(x, pseudo_inverses(factors))
    got = mahalanobis_sq_dense(x, factors)
    assert got.shape == (n, n)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())


def test_dense_sq_distances_are_not_euclidean():
    # Guard for the reference test above: with anisotropic neighbourhoods the
    # Mahalanobis distance is far from a scaled Euclidean one, so a kernel that
    # ignored the factors could not pass it.
    x, nb = gaussian_cloud(3, 15, 3, 12)
    d2 = mahalanobis_sq_dense(x, precision_factors(neighbourhood_covariances(nb)))
    e2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    off = ~np.eye(len(x), dtype=bool)
    ratio = d2[off] / e2[off]
    assert ratio.max() / ratio.min() > 3


# --------------------------------------------------------------------------- 2. datafold agreement


@pytest.mark.parametrize("seed,n,f,m", [(0, 20, 3, 15), (1, 30, 5, 25), (2, 12, 2, 6)])
def test_kernel_matches_datafold_mahalanobis_kernel(seed, n, f, m):
    from datafold.pcfold.kernels import MahalanobisKernel

    x, nb = gaussian_cloud(seed, n, f, m)
    factors = precision_factors(neighbourhood_covariances(nb))
    precisions = pseudo_inverses(factors)  # datafold wants precisions, not covariances
    d2 = mahalanobis_sq_dense(x, factors)
    eps_theirs = float(d2.max()) / 20  # every kernel value >= exp(-10): none underflows

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "marked as experimental"
        theirs = MahalanobisKernel(epsilon=eps_theirs)(x, cov_matrices=precisions)
    # datafold's default distance has cut_off=inf: every off-diagonal pair is stored.
    assert scipy.sparse.issparse(theirs)
    assert theirs.nnz == n * (n - 1)

    # theirs: exp(-d2 / (2 eps)); ours: exp(-d2 / eps), so ours at 2 eps is theirs at eps.
    ours = gaussian_kernel(d2, 2 * eps_theirs)
    theirs = theirs.toarray()
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(ours[off], theirs[off], rtol=1e-10, atol=0)
    assert np.all(np.diag(ours) == 1.0)  # ours keeps the self-similarity datafold drops
    assert ours[off].min() < 0.5  # the comparison spans a real range of values


@FAST
@given(seed=st.integers(0, 2**32 - 1), f=st.integers(1, 6), n=st.integers(1, 6))
def test_untruncated_precision_is_numpy_pinv_for_well_conditioned_covariances(seed, f, n):
    # rcond=0 keeps every direction: L L^T must be the ordinary (pseudo-)inverse.
    rng = np.random.default_rng(seed)
    nb = rng.normal(size=(n, 8 * f + 10, f)) * rng.uniform(0.5, 2.0, size=(n, 1, f))
    cov = neighbourhood_covariances(nb)
    assert np.linalg.cond(cov).max() < 1e4  # precondition: well conditioned
    got = pseudo_inverses(precision_factors(cov, rcond=0.0))
    for i in range(n):
        expected = np.linalg.pinv(cov[i])
        assert rel_err(got[i], expected) < 1e-10


def test_neighbourhood_covariances_are_numpy_cov():
    # ddof=1 like numpy.cov; a /m instead of /(m-1) would shift every distance.
    _, nb = gaussian_cloud(4, 7, 3, 9)
    cov = neighbourhood_covariances(nb)
    for i in range(len(nb)):
        np.testing.assert_allclose(cov[i], np.cov(nb[i], rowvar=False), rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- 3. bad conditioning


def stable_reference(x, factors):
    """Per pair: 1/2 (||L_i^T d||^2 + ||L_j^T d||^2) with d = x_i - x_j formed first."""
    n = len(x)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            d = x[i] - x[j]
            out[i, j] = 0.5 * (((factors[i].T @ d) ** 2).sum() + ((factors[j].T @ d) ** 2).sum())
    return out


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 30),
    m=st.integers(10, 40),
    delta=st.floats(0.01, 0.5),
    rcond=st.sampled_from([DEFAULT_RCOND, 1e-9, 1e-12]),
    offset=st.floats(0.0, 10.0),
)
def test_sq_distances_nonnegative_and_exactly_symmetric_when_badly_conditioned(
    seed, n, m, delta, rcond, offset
):
    # Offset: activations far from the origin (a shifted layer) make an expanded
    # quadratic form cancel catastrophically; the distances themselves do not change.
    x, nb = tanh_layer(seed, n, m, delta)
    x, nb = x + offset, nb + offset
    factors = precision_factors(neighbourhood_covariances(nb), rcond)
    d2 = mahalanobis_sq_dense(x, factors)
    assert np.all(np.isfinite(d2))
    assert d2.min() >= 0.0
    assert np.array_equal(d2, d2.T)  # exact, not approximate: the kernel is declared symmetric
    assert np.all(np.diag(d2) == 0.0)
    off = ~np.eye(n, dtype=bool)
    ref = stable_reference(x, factors)
    assert np.all(np.abs(d2 - ref)[off] <= 1e-6 * ref[off])

    k = min(5, n - 1)
    sparse = mahalanobis_sq_knn(x, factors, k)
    assert sparse.data.min() >= 0.0
    assert (sparse != sparse.T).nnz == 0


def test_far_from_the_origin_the_expanded_quadratic_form_fails_by_construction():
    # Guard for the test above: the property it checks (distances never formed as
    # x^T P x - 2 x^T P y + y^T P y) matters. Samples 1e11 from the origin make every
    # term of the expansion at least 2^66 (about 7e19), and floats of that size are
    # multiples of 2^14: whatever the BLAS and the summation order, the expanded form
    # can only come out as a multiple of 2^13 (after the symmetrising half). On every pair whose true distance
    # lies in (0, 2^12) it is therefore wrong by at least the distance itself, with no
    # dependence on rounding; the whitened kernel stays exact there.
    x, nb = gaussian_cloud(2, 30, 4, 40, spread=1.0, aniso=0.3)
    x, nb = x + 1e11, nb + 1e11
    factors = precision_factors(neighbourhood_covariances(nb))
    p = pseudo_inverses(factors)
    xpx = np.einsum("if,jfg,ig->ij", x, p, x)  # x_i^T P_j x_i
    xpy = np.einsum("if,jfg,jg->ij", x, p, x)  # x_i^T P_j x_j
    ypy = np.einsum("jf,jfg,jg->j", x, p, x)  # x_j^T P_j x_j
    assert min(xpx.min(), xpy.min(), ypy.min()) >= 10 * 2.0**66  # precondition, by a margin of 10
    one_sided = xpx - 2 * xpy + ypy[None, :]
    naive = 0.5 * (one_sided + one_sided.T)
    assert np.all(np.mod(naive, 2.0**13) == 0)
    off = ~np.eye(len(x), dtype=bool)
    ref = stable_reference(x, factors)
    small = off & (ref < 2.0**12)
    assert ref[off].min() > 0 and small.sum() > 0.9 * off.sum()  # nearly every pair
    assert np.all(np.abs(naive - ref)[small] >= ref[small])
    d2 = mahalanobis_sq_dense(x, factors)
    assert d2.min() >= 0
    assert np.all(np.abs(d2 - ref)[off] <= 1e-7 * ref[off])


# --------------------------------------------------------------------------- 4. truncation


@pytest.mark.parametrize("seed,delta", [(1, 0.3), (2, 0.1), (5, 0.03)])
def test_default_rcond_truncates_to_numpy_pinv_with_same_rcond(seed, delta):
    x, nb = tanh_layer(seed, 20, 30, delta)
    cov = neighbourhood_covariances(nb)
    factors = precision_factors(cov)  # default rcond
    p = pseudo_inverses(factors)
    evals, evecs = np.linalg.eigh(cov)
    top = evals[:, -1:]
    kept = evals > DEFAULT_RCOND * top
    # Precondition: the covariances are rank deficient and no eigenvalue sits at the cut.
    assert (~kept).sum(axis=1).min() >= 2
    assert np.all(np.abs(evals / top - DEFAULT_RCOND) > 1e-3 * DEFAULT_RCOND)

    # Factor width is the largest kept rank; lower ranks are zero-padded.
    assert factors.shape == (20, 8, int(kept.sum(axis=1).max()))
    for i in range(len(cov)):
        expected = np.linalg.pinv(cov[i], rcond=DEFAULT_RCOND, hermitian=True)
        assert rel_err(p[i], expected) < 1e-8
        assert np.linalg.matrix_rank(factors[i], tol=1e-8 * np.abs(factors[i]).max()) == kept[i].sum()
        # Dropped directions are annihilated; kept ones are inverted.
        dropped, kept_vecs = evecs[i][:, ~kept[i]], evecs[i][:, kept[i]]
        assert np.abs(factors[i].T @ dropped).max() < 1e-8 * np.abs(factors[i]).max()
        np.testing.assert_allclose(
            kept_vecs.T @ p[i] @ kept_vecs, np.diag(1 / evals[i][kept[i]]), rtol=1e-8, atol=1e-8 / top[i, 0]
        )
        # No precision larger than 1 / (rcond * top): the point of truncating.
        assert np.linalg.eigvalsh(p[i]).max() <= 1.0 / (DEFAULT_RCOND * top[i, 0]) * (1 + 1e-9)

    # And truncation matters here: the untruncated inverse is orders of magnitude larger.
    full = np.linalg.pinv(cov[0], rcond=1e-15, hermitian=True)
    assert np.abs(full).max() > 1e3 * np.abs(p[0]).max()


# --------------------------------------------------------------------------- 5. sparse kNN


@FAST
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 40),
    f=st.integers(1, 5),
    k=st.integers(1, 10),
)
def test_knn_sq_distances_are_dense_ones_on_a_symmetric_knn_pattern(seed, n, f, k):
    k = min(k, n - 1)
    x, nb = gaussian_cloud(seed, n, f, 12)
    factors = precision_factors(neighbourhood_covariances(nb))
    dense = mahalanobis_sq_dense(x, factors)
    sparse = mahalanobis_sq_knn(x, factors, k)
    assert isinstance(sparse, scipy.sparse.csr_matrix) and sparse.shape == (n, n)
    entries = stored_entries(sparse)

    # Diagonal stored explicitly as 0 (so the kernel gives exp(0)=1 there, as the dense one).
    for i in range(n):
        assert entries.get((i, i)) == 0.0

    # Values equal the dense matrix wherever stored.
    scale = dense.max()
    for (i, j), v in entries.items():
        assert abs(v - dense[i, j]) <= 1e-10 * max(dense[i, j], 1e-6 * scale)

    # Symmetric in pattern and in value.
    for (i, j), v in entries.items():
        assert entries[(j, i)] == v

    # Every sample's k nearest Euclidean neighbours are stored.
    e2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(e2, -1.0)
    nearest = np.argsort(e2, axis=1)[:, 1 : k + 1]
    for i in range(n):
        for j in nearest[i]:
            assert (i, int(j)) in entries

    # ... and (kNN-or-reverse-kNN) nothing else.
    for i, j in entries:
        assert i == j or j in nearest[i] or i in nearest[j]


def test_knn_rejects_k_out_of_range():
    x, nb = gaussian_cloud(0, 6, 2, 5)
    factors = precision_factors(neighbourhood_covariances(nb))
    for k in (0, 6):
        with pytest.raises(FitConfigError, match="k_neighbours"):
            mahalanobis_sq_knn(x, factors, k)


# --------------------------------------------------------------------------- 6. epsilon


@pytest.mark.parametrize("seed,n,k", [(0, 20, 1), (1, 25, 5), (2, 30, 10), (3, 11, 10)])
def test_median_knn_epsilon_dense_sparse_and_by_hand_agree(seed, n, k):
    x, nb = gaussian_cloud(seed, n, 3, 10)
    factors = precision_factors(neighbourhood_covariances(nb))
    dense = mahalanobis_sq_dense(x, factors)
    full_knn = mahalanobis_sq_knn(x, factors, n - 1)  # every pair stored

    # By hand: sort each row (self-distance 0 first) and take the k-th neighbour.
    by_hand = float(np.median([sorted(row)[k] for row in dense]))
    eps_dense = median_knn_epsilon(dense, k)
    eps_sparse = median_knn_epsilon(full_knn, k)
    assert eps_dense == pytest.approx(by_hand, rel=1e-12)
    assert eps_sparse == pytest.approx(by_hand, rel=1e-10)
    # k matters: an off-by-one (k-1 or k+1) would give a different value.
    if k > 1:
        assert by_hand != pytest.approx(float(np.median(np.sort(dense, axis=1)[:, k - 1])), rel=1e-6)


def test_median_knn_epsilon_rejects_bad_k_and_zero_epsilon():
    with pytest.raises(FitConfigError, match="epsilon_k"):
        median_knn_epsilon(np.zeros((4, 4)) + 1 - np.eye(4), 4)
    with pytest.raises(FitConfigError, match="epsilon is 0"):
        median_knn_epsilon(np.zeros((4, 4)), 1)


# --------------------------------------------------------------------------- 7. diffusion maps


@pytest.mark.parametrize("k_neighbours", [None, 12])
def test_diffusion_coordinates_spectrum(k_neighbours):
    # Mild anisotropy: strongly anisotropic clouds give kernel weights ~1e-290 between
    # groups, i.e. a numerically disconnected graph with a second eigenvalue 1.
    x, nb = gaussian_cloud(7, 40, 3, 15, aniso=0.3)
    factors = precision_factors(neighbourhood_covariances(nb))
    dc = diffusion_coordinates(x, factors, 5, k_neighbours=k_neighbours)
    assert dc.eigenvalues[1] < 1 - 1e-3  # connected: the constant vector is the unique top one
    assert dc.coordinates.shape == (40, 5) and dc.eigenvalues.shape == (5,)
    assert np.isrealobj(dc.coordinates) and np.isrealobj(dc.eigenvalues)
    first = dc.coordinates[:, 0]
    assert np.std(first) / abs(np.mean(first)) < 1e-8  # the constant (trivial) eigenvector
    assert dc.eigenvalues[0] == pytest.approx(1.0, abs=1e-10)
    assert np.all(np.diff(dc.eigenvalues) <= 0)  # descending
    assert np.all(np.abs(dc.eigenvalues) <= 1 + 1e-10)
    # The median rule was applied to the same distances.
    expected_eps = median_knn_epsilon(
        mahalanobis_sq_dense(x, factors) if k_neighbours is None else mahalanobis_sq_knn(x, factors, k_neighbours),
        10,
    )
    assert dc.epsilon == pytest.approx(expected_eps, rel=1e-12)
    # Sign convention: each column's largest-magnitude entry is positive.
    cols = np.arange(5)
    assert np.all(dc.coordinates[np.abs(dc.coordinates).argmax(axis=0), cols] > 0)


@pytest.mark.parametrize("seed", [0, 1])
def test_diffusion_coordinates_invariant_under_common_rotation(seed):
    # x -> Qx with C -> Q C Q^T leaves every Mahalanobis distance unchanged, so the
    # diffusion coordinates (sign-fixed by the code) must be the same.
    x, nb = gaussian_cloud(seed, 35, 4, 15, aniso=0.3)
    q, _ = np.linalg.qr(np.random.default_rng(100 + seed).normal(size=(4, 4)))
    assert not np.allclose(q, np.eye(4))
    xr, nbr = x @ q.T, nb @ q.T

    base = diffusion_coordinates(x, precision_factors(neighbourhood_covariances(nb)), 4)
    rot = diffusion_coordinates(xr, precision_factors(neighbourhood_covariances(nbr)), 4)
    assert rot.epsilon == pytest.approx(base.epsilon, rel=1e-10)
    np.testing.assert_allclose(rot.eigenvalues, base.eigenvalues, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(rot.coordinates, base.coordinates, rtol=0, atol=1e-8)

    # Guard: a rotation of the samples alone (covariances left as they were) changes them.
    mixed = diffusion_coordinates(xr, precision_factors(neighbourhood_covariances(nb)), 4)
    assert not np.allclose(mixed.coordinates, base.coordinates, atol=1e-3)


@pytest.mark.parametrize("n,n_eig", [(7, 7), (7, 9)])
def test_diffusion_coordinates_rejects_too_many_eigenvectors(n, n_eig):
    x, nb = gaussian_cloud(0, n, 2, 6)
    factors = precision_factors(neighbourhood_covariances(nb))
    with pytest.raises(FitConfigError) as info:
        diffusion_coordinates(x, factors, n_eig, epsilon=1.0)
    msg = str(info.value)
    assert str(n) in msg and str(n_eig) in msg


def test_diffusion_coordinates_allows_n_minus_one_eigenvectors():
    # The error message promises "at most N-1 eigenvectors": that must actually work.
    x, nb = gaussian_cloud(0, 9, 2, 6)
    dc = diffusion_coordinates(x, precision_factors(neighbourhood_covariances(nb)), 8, epsilon_k=3)
    assert dc.coordinates.shape == (9, 8)


# --------------------------------------------------------------------------- 8. input errors


def test_neighbourhoods_of_one_point_are_rejected():
    with pytest.raises(FitConfigError, match="at least 2"):
        neighbourhood_covariances(np.ones((5, 1, 3)))


@pytest.mark.parametrize("value", [0.0, 1.0, -2.5])
def test_zero_covariance_neighbourhood_is_rejected(value):
    # Exactly representable constant: the covariance is exactly zero.
    _, nb = gaussian_cloud(0, 5, 3, 6)
    nb[2] = value
    cov = neighbourhood_covariances(nb)
    assert np.all(cov[2] == 0)
    with pytest.raises(FitConfigError, match="sample 2 has zero covariance"):
        precision_factors(cov)


@pytest.mark.parametrize("value,m", [(0.1, 7), (0.7, 3), (0.2, 10)])
def test_constant_neighbourhood_is_rejected_whatever_its_value(value, m):
    # All neighbours equal, but at a value whose float mean is not exactly itself
    # (0.1 * 7 / 7 != 0.1 in float64). The covariance should still count as zero: the
    # rounding residue (~1e-34) otherwise passes the `> tiny` test and yields factors
    # of ~1e16, i.e. garbage distances instead of the "zero covariance" error.
    _, nb = gaussian_cloud(0, 5, 3, m)
    nb[2] = value
    with pytest.raises(FitConfigError, match="zero covariance"):
        precision_factors(neighbourhood_covariances(nb))


def test_rcond_out_of_range_is_rejected():
    _, nb = gaussian_cloud(0, 4, 2, 5)
    cov = neighbourhood_covariances(nb)
    for rcond in (-1e-3, 1.0):
        with pytest.raises(FitConfigError, match="rcond"):
            precision_factors(cov, rcond)


def test_nan_activations_are_rejected_with_a_message_naming_nan():
    x, nb = gaussian_cloud(0, 8, 2, 6)
    factors = precision_factors(neighbourhood_covariances(nb))
    bad_x = x.copy()
    bad_x[3, 1] = np.nan
    bad_nb = nb.copy()
    bad_nb[1, 2, 0] = np.nan
    with pytest.raises(ActivationError, match="NaN"):
        neighbourhood_covariances(bad_nb)
    with pytest.raises(ActivationError, match="NaN"):
        mahalanobis_sq_dense(bad_x, factors)
    with pytest.raises(ActivationError, match="NaN"):
        mahalanobis_sq_knn(bad_x, factors, 3)
    with pytest.raises(ActivationError, match="NaN"):
        diffusion_coordinates(bad_x, factors, 3)


def test_factors_of_wrong_shape_are_rejected():
    x, nb = gaussian_cloud(0, 8, 2, 6)
    factors = precision_factors(neighbourhood_covariances(nb))
    with pytest.raises(ActivationError, match="do not match"):
        mahalanobis_sq_dense(x[:-1], factors)


def test_eigensolver_non_convergence_gives_a_clear_error(monkeypatch):
    """Seen on CWRU windows (samples that do not cover a connected manifold): datafold's
    ARPACK call gives up. The raw ARPACK error becomes a FitConfigError naming the fixes."""
    import scipy.sparse.linalg

    import equivtest.geometry._datafold as datafold_part
    import equivtest.geometry.dmaps as dmaps
    from equivtest.errors import FitConfigError

    def no_convergence(self, X, **kwargs):
        raise scipy.sparse.linalg.ArpackNoConvergence("ARPACK error -1: No convergence", None, None)

    monkeypatch.setattr(datafold_part.DiffusionMaps, "fit", no_convergence)
    x, nb = tanh_layer(0, 30, 20, delta=0.05)
    factors = precision_factors(neighbourhood_covariances(nb))
    with pytest.raises(FitConfigError, match="did not converge for 30 samples.*Raise epsilon"):
        dmaps.diffusion_coordinates(x, factors, 4, epsilon=0.5)


def test_precision_factors_chunk_by_bytes_and_match_the_whole(monkeypatch):
    # Large neighbourhoods are converted to float64 a few at a time (bounded bytes),
    # with the same factors as in one go.
    from equivtest.geometry import covariance

    rng = np.random.default_rng(3)
    nb = rng.normal(size=(9, 40, 5)) @ rng.normal(size=(5, 5))
    whole = covariance.precision_factors(covariance.neighbourhood_covariances(nb))
    seen = []
    real = covariance.neighbourhood_covariances
    monkeypatch.setattr(covariance, "neighbourhood_covariances", lambda x: seen.append(len(x)) or real(x))
    monkeypatch.setattr(covariance, "CHUNK_BYTES", 8 * 40 * 5 * 2)  # two neighbourhoods per chunk
    chunked = covariance.neighbourhood_precision_factors(nb)
    assert seen == [2, 2, 2, 2, 1]
    np.testing.assert_allclose(chunked @ chunked.transpose(0, 2, 1), whole @ whole.transpose(0, 2, 1), rtol=1e-10, atol=1e-12)


def test_read_only_inputs_are_read_without_warnings():
    # memmapped or frozen activations reach torch without a copy and without torch's
    # "not writable" warning (the geometry only reads its inputs)
    x, nb = gaussian_cloud(4, 12, 3, 10)
    x.flags.writeable = False
    nb.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        factors = precision_factors(neighbourhood_covariances(nb))
        factors.flags.writeable = False
        d2 = mahalanobis_sq_dense(x, factors)
        d2.flags.writeable = False
        kernel = gaussian_kernel(d2, median_knn_epsilon(d2, 3))
    np.testing.assert_allclose(np.diag(kernel), 1.0)


def test_row_parallel_loops_cover_every_row_once_and_restore_torch_threads():
    import torch

    from equivtest.geometry._parallel import over_row_ranges, usable_workers

    threads = torch.get_num_threads()
    seen = np.zeros(1001, dtype=int)

    def mark(start, stop):
        assert torch.get_num_threads() == 1  # no OpenMP barriers inside the loop
        seen[start:stop] += 1
        return stop - start

    assert sum(over_row_ranges(mark, 1001, min_rows_per_worker=10)) == 1001
    assert (seen == 1).all()
    assert torch.get_num_threads() == threads
    torch.set_num_threads(1)
    try:
        assert usable_workers(10**6, 1) == 1  # the user's torch setting caps the threads
    finally:
        torch.set_num_threads(threads)


@FAST
@given(seed=st.integers(0, 2**32 - 1), k=st.integers(1, 8))
def test_neighbour_overlap_is_one_for_a_rotated_and_permuted_copy(seed, k):
    # The Mahalanobis distance is invariant under an orthogonal change of the feature
    # basis (factors transform with it), so both copies rank every sample's neighbours alike.
    x, nb = gaussian_cloud(seed, 40, 4, 12)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    q = q[:, rng.permutation(4)]
    d_a = mahalanobis_sq_dense(x, precision_factors(neighbourhood_covariances(nb)))
    d_b = mahalanobis_sq_dense(x @ q, precision_factors(neighbourhood_covariances(nb @ q)))
    assert neighbour_overlap(nearest_samples(d_a, k)[0], nearest_samples(d_b, k)[0]) == 1.0


def test_neighbour_overlap_of_unrelated_geometries_is_near_chance():
    # positive control: two independent clouds share about k / (N - 1) of their neighbours
    k, n = 10, 200
    near = []
    for seed in (1, 2):
        x, nb = gaussian_cloud(seed, n, 3, 12)
        near.append(nearest_samples(mahalanobis_sq_dense(x, precision_factors(neighbourhood_covariances(nb))), k)[0])
    overlap = neighbour_overlap(*near)
    assert overlap < 3 * k / (n - 1)
    assert neighbour_overlap(near[0], near[0]) == 1.0


def test_nearest_samples_agree_between_dense_and_sparse_distances():
    x, nb = gaussian_cloud(5, 60, 3, 12)
    factors = precision_factors(neighbourhood_covariances(nb))
    dense, dense_d2 = nearest_samples(mahalanobis_sq_dense(x, factors), 4)
    sparse, sparse_d2 = nearest_samples(mahalanobis_sq_knn(x, factors, 59), 4)
    np.testing.assert_array_equal(dense, sparse)
    np.testing.assert_allclose(dense_d2, sparse_d2, rtol=1e-12)
    assert not (dense == np.arange(60)[:, None]).any()  # never a sample itself


def test_a_given_epsilon_with_fewer_stored_neighbours_than_epsilon_k_still_fits():
    # The neighbour-overlap diagnostic shortens to the neighbours the sparse kernel holds
    # instead of stopping a fit that needs no median rule (epsilon given, k_neighbours < epsilon_k).
    x, nb = gaussian_cloud(1, 80, 3, 12)
    factors = precision_factors(neighbourhood_covariances(nb))
    d2 = mahalanobis_sq_knn(x, factors, 6)
    dc = diffusion_coordinates(x, factors, 4, epsilon=3 * float(np.median(d2.data)), epsilon_k=10, k_neighbours=6)
    assert dc.nearest.shape == (80, 6)
    with pytest.raises(FitConfigError, match="epsilon_k=10 needs"):
        diffusion_coordinates(x, factors, 4, epsilon="median", epsilon_k=10, k_neighbours=6)


def test_the_geometry_works_without_datafold_and_the_diffusion_maps_name_it():
    """datafold (with pandas and scikit-learn) loads when a diffusion map is fitted, not with the
    geometry: factors and distances work where it cannot be imported, and a diffusion map's
    fit there says what to install."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys
        sys.modules["datafold"] = None  # as if not installed: importing it raises ImportError
        import numpy as np
        from equivtest.geometry import diffusion_coordinates, mahalanobis_sq_dense
        from equivtest.geometry.covariance import neighbourhood_precision_factors
        rng = np.random.default_rng(0)
        nb = rng.normal(size=(12, 8, 5))
        d2 = mahalanobis_sq_dense(nb[:, 0], neighbourhood_precision_factors(nb))
        assert d2.shape == (12, 12) and np.isfinite(d2).all()
        try:
            diffusion_coordinates(nb[:, 0], neighbourhood_precision_factors(nb), 3)
        except ImportError as error:
            print(error)
        else:
            raise SystemExit("a diffusion map was fitted without datafold")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "run through datafold" in done.stdout and "pip install datafold==2.0.2" in done.stdout
