"""The Mahalanobis kernel between samples (step 5).

``d2(i, j) = 1/2 (x_i - x_j)^T (P_i + P_j) (x_i - x_j)`` with ``P_i = L_i L_i^T`` the
truncated precision of sample i's neighbourhood. Rather than the expanded quadratic
form ``x^T P x - 2 x^T P y + y^T P y`` (which cancels catastrophically when P has huge
entries) each sample's factor whitens all samples in one GEMM, and the squared
difference of whitened coordinates is summed: ``||L_i^T x_i - L_i^T x_j||^2``.
The result is never negative.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse
from scipy.spatial import cKDTree

from .._validation import as_finite_float64
from ..errors import ActivationError, FitConfigError

_BLOCK_BYTES = 128 * 2**20


def _check(samples, factors) -> tuple[np.ndarray, np.ndarray]:
    x = as_finite_float64(samples, "sample activations", ndim=2)
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 3 or factors.shape[:2] != x.shape:
        raise ActivationError(
            f"precision factors of shape {factors.shape} do not match samples of shape {x.shape}; "
            "expected (N, F, r) for N samples of F features"
        )
    # Translation does not change d2; centring keeps the whitened values small.
    return x - x.mean(axis=0), factors


def one_sided_sq_distances(samples, factors, rows=None) -> np.ndarray:
    """``Q[i, j] = (x_i - x_j)^T P_i (x_i - x_j)`` for ``i`` in ``rows``, all ``j``."""
    x, factors = _check(samples, factors)
    rows = np.arange(len(x)) if rows is None else np.asarray(rows)
    n, f, r = factors.shape
    block = max(1, int(_BLOCK_BYTES // (8 * max(1, r) * n)))
    out = np.empty((len(rows), n))
    for start in range(0, len(rows), block):
        idx = rows[start : start + block]
        lt = factors[idx].transpose(0, 2, 1).reshape(len(idx) * r, f)
        z = (lt @ x.T).reshape(len(idx), r, n)  # z[b, :, j] = L_i^T x_j
        own = z[np.arange(len(idx)), :, idx]  # L_i^T x_i, shape (b, r)
        z -= own[:, :, None]  # in place: the block is the largest array here
        np.einsum("brn,brn->bn", z, z, out=out[start : start + len(idx)])
    return out


def mahalanobis_sq_dense(samples, factors) -> np.ndarray:
    """Symmetric ``(N, N)`` matrix of Mahalanobis squared distances."""
    q = one_sided_sq_distances(samples, factors)
    return 0.5 * (q + q.T)


def mahalanobis_sq_knn(samples, factors, k: int) -> scipy.sparse.csr_matrix:
    """Sparse squared distances over each sample's ``k`` nearest neighbours.

    Neighbours are found in Euclidean activation space; the pattern is symmetrised
    (i~j if either is among the other's k nearest), and the diagonal is stored
    explicitly as 0 so that the kernel gives 1 there, as the dense kernel does.
    """
    x, factors = _check(samples, factors)
    n = len(x)
    if not 1 <= k < n:
        raise FitConfigError(f"k_neighbours must lie in [1, {n - 1}] for {n} samples, got {k}")
    _, nbr = cKDTree(x).query(x, k=k + 1)
    rows = np.repeat(np.arange(n), k + 1)
    pattern = scipy.sparse.coo_matrix((np.ones(rows.size), (rows, nbr.ravel())), shape=(n, n)).tocsr()
    pattern = (pattern + pattern.T).tocoo()
    i, j = pattern.row, pattern.col
    diff = x[i] - x[j]
    # (x_i-x_j)^T P_i (x_i-x_j) and the same with P_j, in chunks to bound memory
    d2 = np.empty(i.size)
    r = factors.shape[2]
    chunk = max(1, int(_BLOCK_BYTES // (8 * factors.shape[1] * r * 2)))
    for s in range(0, i.size, chunk):
        sl = slice(s, s + chunk)
        zi = np.einsum("pfr,pf->pr", factors[i[sl]], diff[sl])
        zj = np.einsum("pfr,pf->pr", factors[j[sl]], diff[sl])
        d2[sl] = 0.5 * ((zi**2).sum(1) + (zj**2).sum(1))
    out = scipy.sparse.csr_matrix((d2, (i, j)), shape=(n, n))
    out.setdiag(0.0)  # explicit zeros on the diagonal survive as stored entries
    return out


def median_knn_epsilon(d2, k: int = 10) -> float:
    """Bandwidth rule: median over samples of the squared distance to the k-th neighbour.

    Works on a dense ``(N, N)`` or sparse kNN matrix of squared Mahalanobis distances.
    """
    if k < 1:
        raise FitConfigError(f"epsilon_k must be at least 1, got {k}")
    if scipy.sparse.issparse(d2):
        d2 = d2.tocsr()
        shortest = int(np.diff(d2.indptr).min())
        if k >= shortest:
            raise FitConfigError(
                f"epsilon_k={k} needs at least {k + 1} stored distances per sample, but a row has "
                f"{shortest}; raise k_neighbours above epsilon_k or lower epsilon_k"
            )
        kth = []
        for i in range(d2.shape[0]):
            row = np.sort(d2.data[d2.indptr[i] : d2.indptr[i + 1]])
            kth.append(row[k])
        kth = np.asarray(kth)
    else:
        d2 = np.asarray(d2)
        if not 1 <= k < d2.shape[0]:
            raise FitConfigError(f"epsilon_k must lie in [1, {d2.shape[0] - 1}], got {k}")
        kth = np.partition(d2, k, axis=1)[:, k]
    eps = float(np.median(kth))
    if not eps > 0:
        raise FitConfigError(
            "the estimated epsilon is 0: samples coincide in Mahalanobis distance; "
            "give epsilon explicitly or use more distinct samples"
        )
    return eps


def gaussian_kernel(d2, epsilon: float):
    """``exp(-d2 / epsilon)`` (thesis eq. 2.1); sparse input keeps its pattern."""
    if not epsilon > 0:
        raise FitConfigError(f"epsilon must be positive, got {epsilon}")
    if scipy.sparse.issparse(d2):
        out = d2.tocsr(copy=True)
        out.data = np.exp(-out.data / epsilon)
        return out
    return np.exp(-np.asarray(d2) / epsilon)


def mahalanobis_sq_dense_torch(samples, factors, device="cpu") -> np.ndarray:
    """:func:`mahalanobis_sq_dense` computed with torch on ``device`` (e.g. ``"cuda"``).

    Same whitened-difference algorithm and blocking, in float64, so results equal the
    NumPy path to rounding; the ``(N, N)`` result comes back as a NumPy array.
    """
    import torch

    x, factors = _check(samples, factors)
    dev = torch.device(device)
    xt = torch.as_tensor(x, device=dev)
    lt_all = torch.as_tensor(factors, device=dev).transpose(1, 2)  # (N, r, F)
    n, r, f = lt_all.shape
    block = max(1, int(_BLOCK_BYTES // (8 * max(1, r) * n)))
    q = torch.empty((n, n), dtype=torch.float64, device=dev)
    for start in range(0, n, block):
        lt = lt_all[start : start + block]
        z = (lt.reshape(-1, f) @ xt.T).reshape(len(lt), r, n)
        own = z[torch.arange(len(lt), device=dev), :, torch.arange(start, start + len(lt), device=dev)]
        q[start : start + len(lt)] = ((z - own[:, :, None]) ** 2).sum(dim=1)
    return (0.5 * (q + q.T)).cpu().numpy()
