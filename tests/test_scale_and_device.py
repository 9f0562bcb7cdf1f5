"""The scale path (chunked covariances, sparse kernel, local RBF) and the device path."""

import numpy as np
import pytest
import torch

from equivtest.geometry import (
    mahalanobis_sq_dense,
    neighbourhood_covariances,
    precision_factors,
)
from equivtest.geometry.covariance import neighbourhood_precision_factors
from equivtest.transform import Transformation


def curve_activations(n, m, width=8, seed=0):
    rng = np.random.default_rng(seed)
    w, b = rng.normal(size=width) * 2, rng.normal(size=width)
    t = np.linspace(-1, 1, n)
    nb = t[:, None] + 0.05 * rng.standard_normal((n, m))
    return np.tanh(t[:, None] * w + b), np.tanh(nb[..., None] * w + b)


class LazyRows:
    """Neighbourhood activations served chunk by chunk, counting the rows read."""

    def __init__(self, array):
        self.array, self.shape, self.rows_read = array, array.shape, 0

    def __len__(self):
        return len(self.array)

    def __getitem__(self, rows):
        out = self.array[rows]
        self.rows_read += len(out)
        return out


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_chunked_factors_equal_the_whole_computation(chunk):
    _, nb = curve_activations(50, 30)
    whole = precision_factors(neighbourhood_covariances(nb))
    chunked = neighbourhood_precision_factors(nb, chunk=chunk)
    p = lambda f: f @ f.transpose(0, 2, 1)  # noqa: E731  compare the precisions (factor padding may differ)
    np.testing.assert_allclose(p(chunked), p(whole), rtol=1e-10, atol=1e-8 * np.abs(p(whole)).max())


def test_fit_reads_lazy_neighbourhoods_without_materialising_them():
    sa, na = curve_activations(60, 40, seed=1)
    sb, nb = curve_activations(60, 40, seed=2)
    lazy_a, lazy_b = LazyRows(na), LazyRows(nb)
    lazy = Transformation(3).fit(sa, lazy_a, sb, lazy_b)
    eager = Transformation(3).fit(sa, na, sb, nb)
    assert lazy_a.rows_read == 60 and lazy_b.rows_read == 60
    np.testing.assert_allclose(lazy.predict(sa, to="b"), eager.predict(sa, to="b"), rtol=1e-10, atol=1e-12)


def test_local_rbf_and_sparse_kernel_match_the_dense_path():
    # 400 samples on a curve; the scale path (kNN kernel, local RBF) against the dense one
    sa, na = curve_activations(400, 64, seed=3)
    sb, nb = curve_activations(400, 64, seed=4)
    test_a, _ = curve_activations(97, 2, seed=3)
    test_b, _ = curve_activations(97, 2, seed=4)
    dense = Transformation(3).fit(sa, na, sb, nb)
    scale = Transformation(3, k_neighbours=30, rbf_neighbors=32).fit(sa, na, sb, nb)
    for t in (dense, scale):
        rel = np.mean((t.predict(test_a, to="b") - test_b) ** 2) / test_b.var()
        assert rel < 1e-4
    gap = np.mean((scale.predict(test_a, to="b") - dense.predict(test_a, to="b")) ** 2) / test_b.var()
    assert gap < 1e-4


def test_kernel_on_an_explicit_cpu_device_equals_the_default():
    x, nb = curve_activations(70, 40, seed=5)
    factors = precision_factors(neighbourhood_covariances(nb))
    np.testing.assert_array_equal(mahalanobis_sq_dense(x, factors, "cpu"), mahalanobis_sq_dense(x, factors))


def test_transformation_with_kernel_device_cpu_equals_numpy():
    sa, na = curve_activations(80, 40, seed=6)
    sb, nb = curve_activations(80, 40, seed=7)
    t_np = Transformation(3).fit(sa, na, sb, nb)
    t_torch = Transformation(3, kernel_device="cpu").fit(sa, na, sb, nb)
    np.testing.assert_allclose(t_torch.side_a_.coordinates, t_np.side_a_.coordinates, rtol=1e-8, atol=1e-10)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_kernel_equals_cpu():
    x, nb = curve_activations(300, 40, seed=8)
    factors = precision_factors(neighbourhood_covariances(nb))
    np.testing.assert_allclose(mahalanobis_sq_dense(x, factors, "cuda"), mahalanobis_sq_dense(x, factors),
                               rtol=1e-10, atol=1e-12)


def test_large_dense_kernels_go_sparse_without_changing_the_coordinates(monkeypatch):
    import equivtest.geometry.dmaps as dmaps

    x, nb = curve_activations(300, 40, seed=9)
    factors = precision_factors(neighbourhood_covariances(nb))
    dense = dmaps.diffusion_coordinates(x, factors, 4, epsilon=0.05)
    monkeypatch.setattr(dmaps, "SPARSE_FROM", 100)
    kernel = dmaps.MahalanobisDmapKernel(factors, 0.05)
    assert dmaps.scipy.sparse.issparse(kernel(x)) and kernel(x).nnz < 0.9 * 300**2
    sparse = dmaps.diffusion_coordinates(x, factors, 4, epsilon=0.05)
    np.testing.assert_allclose(sparse.eigenvalues, dense.eigenvalues, rtol=1e-12)
    np.testing.assert_allclose(sparse.coordinates, dense.coordinates, rtol=1e-8, atol=1e-10)
