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
import torch
from scipy.spatial import cKDTree

from .._memory import drop_pages
from .._validation import as_finite_float64
from ..errors import ActivationError, FitConfigError
from ._parallel import over_row_ranges
from ._tensors import as_tensor

_BLOCK_BYTES = 128 * 2**20  # per block on an accelerator
_CACHE_BLOCK_BYTES = 4 * 2**20  # per block on the CPU: about a core's L2 plus a share of L3


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


def mahalanobis_sq_dense(samples, factors, device=None) -> np.ndarray:
    """Symmetric ``(N, N)`` matrix of Mahalanobis squared distances.

    Computed with torch in float64 on ``device`` (a torch device such as ``"cuda"``;
    the CPU when ``None``). One GEMM per block of samples gives the whitened
    differences directly: with each factor row augmented by ``-L_i^T x_i`` and each
    sample by a constant 1, ``[L_i^T, -L_i^T x_i] [x_j; 1] = L_i^T (x_j - x_i)``, so
    no pass over memory subtracts them afterwards. On the CPU the block is sized to
    stay in cache while it is squared and summed: whole-matrix intermediates of
    ``N^2 r`` values made memory traffic cost as much as the GEMM itself.

    Cost: ``N^2 r F`` multiply-adds. The GEMM works in each neighbourhood's span, the
    ``r <= M - 1`` columns of its factor (see ``neighbourhood_precision_factors``), never
    with ``F x F`` precisions. Projecting the samples onto an orthonormal basis of their
    own span (dimension ``d``) first would cost ``N r F d`` for the factors and ``N^2 r d``
    for the GEMM: less only where ``d < N F / (N + F)``, below ``min(N, F)``, while a real
    layer's centred activations span ``min(N - 1, F)`` dimensions. So it is not done.
    """
    mapped = factors if isinstance(factors, np.memmap) else None  # a file map: its pages are dropped as read
    x, factors = _check(samples, factors)
    dev = torch.device("cpu" if device is None else device)
    n, f, r = factors.shape
    xt = as_tensor(x, device=dev)
    lt = as_tensor(factors, device=dev)  # (N, F, r); on the CPU the caller's array, not a copy
    cols = torch.cat([xt, torch.ones((n, 1), dtype=xt.dtype, device=dev)], dim=1).T.contiguous()
    q = torch.empty((n, n), dtype=torch.float64, device=dev)

    def rows_of_q(first: int, last: int, block: int) -> None:
        for start in range(first, last, block):
            stop = min(last, start + block)
            # the block's augmented rows [L_b^T, -L_b^T x_b]: built per block, so the
            # factors are never copied whole (N F r values: 3 GB at F = 3,072, M = 64)
            own = torch.bmm(xt[start:stop, None, :], lt[start:stop])  # L_b^T x_b, (b, 1, r)
            rows = torch.cat([lt[start:stop].transpose(1, 2), -own.transpose(1, 2)], dim=2)
            if mapped is not None:  # factors in a file (a memory budget): keep only this block resident
                drop_pages(mapped[start:stop])
            z = rows.reshape((stop - start) * r, f + 1) @ cols  # z[b*r + k, j] = (L_b^T (x_j - x_b))_k
            z.square_()
            torch.sum(z.view(stop - start, r, n), dim=1, out=q[start:stop])

    if dev.type == "cpu":
        block = max(1, int(_CACHE_BLOCK_BYTES // (8 * max(1, r) * n)))
        over_row_ranges(lambda first, last: rows_of_q(first, last, block), n, min_rows_per_worker=4 * block)
    else:
        rows_of_q(0, n, max(1, int(_BLOCK_BYTES // (8 * max(1, r) * n))))
    out = q.cpu().numpy()
    np.fill_diagonal(out, 0.0)  # exactly 0 by definition; the GEMM leaves rounding there
    _symmetrise_in_place(out)
    return out


def _symmetrise_in_place(q: np.ndarray, tile: int = 512) -> None:
    """``q <- (q + q^T) / 2`` tile by tile: no second and third N x N array to fault in."""
    n = q.shape[0]
    for i in range(0, n, tile):
        for j in range(i, n, tile):
            mean = (q[i : i + tile, j : j + tile] + q[j : j + tile, i : i + tile].T) * 0.5
            q[i : i + tile, j : j + tile] = mean
            q[j : j + tile, i : i + tile] = mean.T


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
    check_epsilon_k(d2, k)
    return median_epsilon(nearest_samples(d2, k)[1][:, k - 1])


def check_epsilon_k(d2, k: int) -> None:
    """``k`` must name a neighbour every sample has (``median_knn_epsilon``'s rule)."""
    if k < 1:
        raise FitConfigError(f"epsilon_k must be at least 1, got {k}")
    fewest = fewest_neighbours(d2)
    if scipy.sparse.issparse(d2):
        if k > fewest:
            raise FitConfigError(
                f"epsilon_k={k} needs at least {k + 1} stored distances per sample (itself included), but a row "
                f"has {fewest + 1}; raise k_neighbours above epsilon_k or lower epsilon_k"
            )
    elif k > fewest:
        raise FitConfigError(f"epsilon_k must lie in [1, {fewest}], got {k}")


def median_epsilon(kth) -> float:
    """The median of each sample's squared distance to its k-th neighbour, refused when 0."""
    eps = float(np.median(kth))
    if not eps > 0:
        raise FitConfigError(
            "the estimated epsilon is 0: samples coincide in Mahalanobis distance; "
            "give epsilon explicitly or use more distinct samples"
        )
    return eps


def fewest_neighbours(d2) -> int:
    """The fewest other samples any row holds a distance to: N - 1 when dense."""
    if not scipy.sparse.issparse(d2):
        return int(np.shape(d2)[0]) - 1
    coo = d2.tocoo()
    off = coo.row != coo.col
    return int(np.bincount(coo.row[off], minlength=d2.shape[0]).min())


def nearest_samples(d2, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's ``k`` nearest other samples by ``d2`` (dense or sparse kNN), nearest first:
    their indices ``(N, k)`` and squared distances ``(N, k)``. Identical matrices give identical rows."""
    fewest = fewest_neighbours(d2)
    if not 1 <= k <= fewest:
        raise FitConfigError(f"k must lie in [1, {fewest}] (the fewest neighbours a sample has), got {k}")
    if scipy.sparse.issparse(d2):
        coo = d2.tocoo()
        off = coo.row != coo.col
        rows, cols, vals = coo.row[off], coo.col[off], coo.data[off]
        order = np.lexsort((cols, vals, rows))  # by row, then distance, then index
        starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=d2.shape[0]))[:-1]])
        pick = order[starts[:, None] + np.arange(k)]
        return cols[pick].astype(np.int64), vals[pick]
    d2 = np.asarray(d2, dtype=np.float64)
    n = d2.shape[0]
    # k + 1 smallest (a threaded top-k, not a sort of N^2 values), then each row's own index dropped
    found = torch.topk(as_tensor(d2), k + 1, dim=1, largest=False, sorted=True)
    index, value = found.indices.numpy(), found.values.numpy()
    own = index == np.arange(n)[:, None]
    own[~own.any(axis=1), -1] = True  # a duplicate sample ranked before itself: drop the farthest
    return index[~own].reshape(n, k), value[~own].reshape(n, k)


def neighbour_overlap(nearest_a: np.ndarray, nearest_b: np.ndarray) -> float:
    """Mean over samples of the share of its k nearest samples that both networks agree on.

    1 when both networks' Mahalanobis distances rank every sample's neighbours alike (as
    for a network and a rotated or neuron-permuted copy of it); about ``k / (N - 1)`` when
    their local geometries are unrelated. The diffusion maps are built from these
    neighbourhoods, so a low overlap says in advance that their coordinates cannot align.
    """
    if nearest_a.shape != nearest_b.shape:
        raise ActivationError(f"neighbour lists of shapes {nearest_a.shape} and {nearest_b.shape} do not match")
    k = nearest_a.shape[1]
    both = (nearest_a[:, :, None] == nearest_b[:, None, :]).any(axis=2).sum(axis=1)
    return float(np.mean(both / k))


def gaussian_kernel(d2, epsilon: float):
    """``exp(-d2 / epsilon)`` (thesis eq. 2.1); sparse input keeps its pattern."""
    if not epsilon > 0:
        raise FitConfigError(f"epsilon must be positive, got {epsilon}")
    if scipy.sparse.issparse(d2):
        out = d2.tocsr(copy=True)
        out.data = np.exp(-out.data / epsilon)
        return out
    # torch's exp is vectorised and threaded; NumPy's takes 2x as long on N^2 values.
    return (as_tensor(np.asarray(d2, dtype=np.float64)) / -epsilon).exp_().numpy()
