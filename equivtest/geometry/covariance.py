"""Per-sample neighbourhood covariances and their truncated pseudo-inverses (step 4)."""

from __future__ import annotations

import numpy as np
import torch

from .._memory import drop_pages
from .._validation import as_finite_float64
from ..errors import FitConfigError
from ._parallel import over_row_ranges
from ._tensors import as_tensor

DEFAULT_RCOND = 1e-6


def _neighbourhoods(neighbourhood_activations, keep_float32: bool = False) -> np.ndarray:
    """The ``(n, M, F)`` activations as finite float64 (or float32 kept, when asked and given), refused when ``M < 2``."""
    nb = as_finite_float64(neighbourhood_activations, "neighbourhood activations", ndim=3, keep_float32=keep_float32)
    if nb.shape[1] < 2:
        raise FitConfigError(
            f"neighbourhoods have {nb.shape[1]} point each; a covariance needs at least 2 "
            "(raise the neighbourhood size, the thesis uses 100 to 1024)"
        )
    return nb


def _centred(part: torch.Tensor) -> torch.Tensor:
    """Each neighbourhood minus its mean, in a new tensor.

    Shifted by the first neighbour before centring: a feature constant over the
    neighbourhood then has exactly zero variance whatever its value (the float mean of
    m copies of 0.1 is not 0.1, which would leave a ~1e-34 residue).
    """
    shifted = part - part[:, :1, :]
    shifted -= shifted.mean(dim=1, keepdim=True)
    return shifted


def neighbourhood_covariances(neighbourhood_activations) -> np.ndarray:
    """Sample covariance (``ddof=1``, as ``numpy.cov``) of each neighbourhood: ``(N, F, F)``."""
    nb = _neighbourhoods(neighbourhood_activations)
    n, m, f = nb.shape
    # Blocks of about 1 MB stay in cache through the three passes (shift, centre,
    # product); whole-stack temporaries made this 4x slower (measured at 2,000 x 100 x 24).
    block = max(1, _COV_BLOCK_BYTES // (8 * m * f))
    stack = as_tensor(nb)
    out = np.empty((n, f, f))
    out_t = torch.from_numpy(out)

    def rows(first: int, last: int) -> None:
        for start in range(first, last, block):
            stop = min(last, start + block)
            centred = _centred(stack[start:stop])
            torch.matmul(centred.transpose(1, 2), centred, out=out_t[start:stop])

    over_row_ranges(rows, n, min_rows_per_worker=4 * block)
    out /= m - 1
    return out


_COV_BLOCK_BYTES = 2**20


def precision_factors(covariances, rcond: float = DEFAULT_RCOND, ridge: float = 0.0) -> np.ndarray:
    """Factors ``L_i`` (shape ``(N, F, r)``) with ``L_i L_i^T`` the truncated pseudo-inverse of ``C_i``.

    Eigenvalues below ``rcond`` times the largest eigenvalue of the same covariance are
    dropped (a relative cut-off). Why truncate: a layer wider than the input manifold
    has nearly singular neighbourhood covariances (eigenvalues down to 1e-15 of the
    largest), whose plain pseudo-inverse has entries near 1e18 and makes every
    distance explode. ``r`` is the largest rank kept over all samples; factors of
    lower rank are padded with zero columns.

    ``ridge`` (an absolute variance, >= 0) is added to every kept eigenvalue before
    inversion: ``L_i L_i^T = U (S + ridge)^-1 U^T`` on the kept directions. Dropped
    directions keep a zero precision whatever the ridge.
    """
    _check_rcond(rcond)
    _check_ridge(ridge)
    evals, evecs = _batched_eigh(np.asarray(covariances, dtype=np.float64))  # ascending
    keep = _kept(evals, rcond)
    rank = int(keep.sum(axis=1).max())
    return _scaled(evals[:, -rank:], evecs[:, :, -rank:], keep[:, -rank:], ridge)


def _check_rcond(rcond: float) -> None:
    if not 0 <= rcond < 1:
        raise FitConfigError(f"rcond must lie in [0, 1), got {rcond}")


def _check_ridge(ridge: float) -> None:
    if not ridge >= 0:
        raise FitConfigError(f"the covariance ridge must be >= 0, got {ridge}")


def _kept(evals: np.ndarray, rcond: float, first_sample: int = 0) -> np.ndarray:
    """Which eigenvalues (ascending per row) pass the cut-off ``rcond`` x the row's largest."""
    keep = evals > np.maximum(rcond * evals[:, -1:], np.finfo(np.float64).tiny)
    if not keep[:, -1].all():
        bad = first_sample + int(np.flatnonzero(~keep[:, -1])[0])
        raise FitConfigError(
            f"the neighbourhood of sample {bad} has zero covariance: every neighbour maps to the "
            "same activation. The layer is saturated or constant there; raise delta or pick another layer"
        )
    return keep


def _scaled(evals: np.ndarray, evecs: np.ndarray, keep: np.ndarray, ridge: float, out=None) -> np.ndarray:
    """``evecs`` times ``1 / sqrt(eval + ridge)`` column by column, 0 where not kept."""
    scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, evals, 1.0) + ridge), 0.0)
    return np.multiply(evecs, scale[:, None, :], out=out)


_EIGH_MIN_PER_THREAD = 256  # matrices; below that a thread costs more than it saves


def _batched_eigh(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.linalg.eigh`` over a stack, split across threads (LAPACK releases the GIL).

    NumPy loops over the stack on one core; at 2,000 matrices of 24 x 24 two threads
    halve the time (measured). Each matrix is still decomposed by the same routine.
    """
    evals = np.empty(cov.shape[:2])
    evecs = np.empty(cov.shape)

    def rows(start: int, stop: int) -> None:
        evals[start:stop], evecs[start:stop] = np.linalg.eigh(cov[start:stop])

    over_row_ranges(rows, len(cov), _EIGH_MIN_PER_THREAD)
    return evals, evecs


def pseudo_inverses(factors: np.ndarray) -> np.ndarray:
    """``L_i L_i^T`` for each factor: the (truncated) precision matrices, ``(N, F, F)``."""
    return np.matmul(factors, factors.transpose(0, 2, 1))


def neighbourhood_spectra(neighbourhood_activations, device=None, out=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The nonzero part of each neighbourhood covariance's spectrum, without forming it where ``F >= M``.

    Returns ``evals`` ``(n, K)`` (ascending), ``evecs`` ``(n, F, K)`` (orthonormal columns)
    and ``variances`` ``(n,)`` (``trace(C_i) / F``), with ``K = min(M - 1, F)``: the centred
    ``M x F`` activations ``X_i`` have rank at most ``M - 1``, so ``C_i = X_i^T X_i / (M - 1)``
    has at most that many nonzero eigenvalues: ``s^2 / (M - 1)`` for the singular values
    ``s`` of ``X_i``, with its right singular vectors as eigenvectors (the thin SVD).

    They come from the smaller of the two Gram matrices. Where ``F < M``, the ``F x F``
    ``X_i^T X_i`` (the covariance, as ``precision_factors`` takes it; on the CPU exactly
    today's computation). Where ``F >= M``, the ``M x M`` ``X_i X_i^T = V S^2 V^T``, and
    the singular vectors ``X_i^T V S^-1``: memory ``n F K`` and time ``n M^2 F``, no
    ``F x F`` matrix. Both square the condition number alike, so the eigenvalues carry
    the same absolute error (about 1e-16 of the largest, 1e-10 relative at the default
    cut-off) as the dense path's. LAPACK's SVD of ``X_i`` (``gesdd``) is more accurate for
    small singular values but was 10x slower (500 neighbourhoods of 64 x 768, measured),
    too slow for the widths this path is for.

    ``device``: a torch device on which to compute (``None``: the CPU, in threads).
    ``out``: an ``(n, F, K)`` float64 array to write the eigenvectors into (returned as ``evecs``).
    """
    return _spectra(_neighbourhoods(neighbourhood_activations, keep_float32=True), device, out)


def _spectra(nb: np.ndarray, device, out) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`neighbourhood_spectra` of checked activations (float32 kept: the Gram route converts per block)."""
    n, m, f = nb.shape
    dev = torch.device("cpu" if device is None else device)
    if f < m and dev.type == "cpu":
        cov = neighbourhood_covariances(nb)
        evals, evecs = _batched_eigh(cov)
        if out is not None:
            np.copyto(out, evecs)
            evecs = out
        return evals, evecs, np.trace(cov, axis1=1, axis2=2) / f
    return _gram_spectra(nb, dev, out)


def _gram_spectra(nb: np.ndarray, dev: torch.device, out=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``neighbourhood_spectra`` in torch on ``dev``, from the smaller Gram matrix of each neighbourhood
    (the eigenvectors written into ``out``, an ``(n, F, K)`` array, when given)."""
    n, m, f = nb.shape
    k = min(m - 1, f)
    evals, variances = np.empty((n, k)), np.empty(n)
    evecs = np.empty((n, f, k)) if out is None else out
    tiny = np.finfo(np.float64).tiny

    def rows(first: int, last: int, block: int) -> None:
        for start in range(first, last, block):
            stop = min(last, start + block)
            x = _centred(as_tensor(nb[start:stop], device=dev).to(torch.float64))  # float32 rows: exact
            if f < m:
                values, vectors = torch.linalg.eigh(x.transpose(1, 2) @ x)  # ascending
            else:
                gram = x @ x.transpose(1, 2)
                if dev.type == "cuda":
                    # the M x M eigenproblems on the CPU: on an H200, torch.linalg.eigh solved batches of
                    # 64 x 64 ones 2-3x slower than the CPU (docs/performance.md, "On a GPU"); the
                    # products stay on the device
                    values, v = (t.to(dev) for t in torch.linalg.eigh(gram.cpu()))
                else:
                    values, v = torch.linalg.eigh(gram)
                values, v = values[:, -k:], v[:, :, -k:]  # the M-th is 0: centring removed it
                # X^T v / s; rounding leaves 0 (or below) where s is 0: a zero column, never kept
                inverse = torch.where(values > tiny, values.clamp(min=tiny).rsqrt(), 0.0)
                vectors = (x.transpose(1, 2) @ v) * inverse[:, None, :]
            evals[start:stop] = (values / (m - 1)).cpu().numpy()
            evecs[start:stop] = vectors.cpu().numpy()
            variances[start:stop] = (x.square().sum(dim=(1, 2)) / ((m - 1) * f)).cpu().numpy()

    if dev.type == "cpu":
        block = max(1, _GRAM_BLOCK_BYTES // (8 * m * f))
        over_row_ranges(lambda first, last: rows(first, last, block), n, min_rows_per_worker=block)
    else:
        rows(0, n, n)  # the chunk's bytes are bounded by the caller (CHUNK_BYTES)
    return evals, evecs, variances


_GRAM_BLOCK_BYTES = 4 * 2**20  # per thread on the CPU: a block's copies stay in cache


CHUNK_BYTES = 32 * 2**20  # float64 neighbourhood activations converted at a time: small beside the factors


def neighbourhood_precision_factors(
    neighbourhood_activations, rcond: float = DEFAULT_RCOND, chunk: int = 4096, ridge: float = 0.0, device=None,
    allocate=None,
) -> np.ndarray:
    """Truncated precision factors ``(N, F, r)`` of the neighbourhoods, ``chunk`` samples at a time.

    The same factors as ``precision_factors(neighbourhood_covariances(nb), rcond, ridge * v)``
    (to rounding), where ``v`` is the median over samples of the mean per-feature variance
    of the neighbourhood (``trace(C_i) / F``): ``ridge`` is relative, so it means the same
    for a layer whatever its scale. The spectra come from :func:`neighbourhood_spectra`:
    where ``F >= M`` no ``F x F`` covariance is formed and ``r <= M - 1``, so the factors
    take ``N F min(M - 1, F)`` values at most. The directions outside a neighbourhood's span
    (eigenvalue 0 of ``C_i``) never pass the cut-off, with or without a ridge, so leaving
    them out changes nothing: ``L_i L_i^T = U (S + ridge)^-1 U^T`` over the kept
    eigenpairs, as for ``precision_factors``. (The dense eigendecomposition gives those
    directions eigenvalues of rounding size, about 1e-16 of the largest; only an ``rcond``
    that small lets it keep some of them, which this path, exact there, does not.)

    ``device``: a torch device (``"cuda"``) on which to compute the SVDs; ``None`` (or
    ``"cpu"``): the CPU, in threads. ``chunk`` shrinks so that one chunk's activations
    take at most ``CHUNK_BYTES`` in float64. ``neighbourhood_activations`` may be anything
    that slices along its first axis into ``(n, M, F)`` arrays (an array, a
    ``numpy.memmap``, or a lazy object that captures each chunk when asked), so the
    ``(N, M, F)`` neighbourhood activations need not fit in memory.

    ``allocate(n_values)``, if given, makes the flat float64 buffer the factors are laid
    out in (default ``np.empty``): e.g. a ``numpy.memmap`` when they exceed a memory budget.
    """
    n = len(neighbourhood_activations)
    if n == 0:
        raise FitConfigError("no neighbourhoods given; capture at least one sample")
    _check_rcond(rcond)
    _check_ridge(ridge)  # before the pass over every neighbourhood, not after it
    shape = getattr(neighbourhood_activations, "shape", None)
    if shape is not None and len(shape) == 3:
        chunk = max(1, min(int(chunk), CHUNK_BYTES // (8 * int(shape[1]) * int(shape[2]) or 1)))
    # Each chunk's kept eigenvectors go, compact, into one buffer sized for the widest
    # possible factors: written where the chunk's part begins (room for all K columns is left
    # there, as every earlier part took at most K per row), then compacted in place to the kept
    # width (nothing moves where every column is kept, the usual case). Its pages are faulted
    # in only as they are written (an untouched np.empty allocation is not resident), so it
    # holds about N F r values, not N F K.
    buffer, used, parts, variances = None, 0, [], []
    for start in range(0, n, int(chunk)):
        part = _neighbourhoods(neighbourhood_activations[start : start + int(chunk)], keep_float32=True)
        rows, m, f = part.shape
        widest = min(m - 1, f)  # K: the most columns a neighbourhood's spectrum has
        if buffer is None:
            buffer = np.empty(n * f * widest) if allocate is None else allocate(n * f * widest)
        room = buffer[used : used + rows * f * widest].reshape(rows, f, widest)
        evals, evecs, variance = _spectra(part, device, room)
        keep = _kept(evals, rcond, first_sample=start)
        width = int(keep.sum(axis=1).max())
        size = rows * f * width
        if width < widest:  # overlapping copy: NumPy copies through a buffer where views overlap
            np.copyto(buffer[used : used + size].reshape(rows, f, width), room[:, :, -width:])
        drop_pages(buffer[used : used + rows * f * widest])  # a buffer in a file (a memory budget): not kept resident
        parts.append((start, len(evecs), width, used, evals[:, -width:], keep[:, -width:]))
        variances.append(variance)
        used += size
        del evals, evecs
    # the ridge needs every sample's variance, so the factors are scaled after the pass
    absolute = float(ridge) * float(np.median(np.concatenate(variances))) if ridge else 0.0
    return _spread_and_scale(buffer, parts, f, absolute)


def _spread_and_scale(buffer: np.ndarray, parts: list, f: int, ridge: float) -> np.ndarray:
    """Lay the compact parts out as ``(N, F, r)`` factors in place, scaled, lower ranks zero-padded on the left.

    A part's rows move to at least where they are (each earlier part is at most ``r``
    wide), so going from the last part and its last rows backwards never overwrites a
    row not yet moved; each block is copied out (and scaled) before it is written.
    """
    rank = max(width for _, _, width, _, _, _ in parts)
    n = sum(rows for _, rows, _, _, _, _ in parts)
    out = buffer[: n * f * rank].reshape(n, f, rank)
    for start, rows, width, offset, evals, keep in reversed(parts):
        source = buffer[offset : offset + rows * f * width].reshape(rows, f, width)
        step = max(1, _CACHE_BYTES // (8 * f * rank))
        for first in reversed(range(0, rows, step)):
            last = min(rows, first + step)
            block = _scaled(evals[first:last], source[first:last], keep[first:last], ridge)  # a new array
            drop_pages(source[first:last])
            target = out[start + first : start + last]
            target[:, :, : rank - width] = 0.0
            target[:, :, rank - width :] = block
            drop_pages(target)
    return out


_CACHE_BYTES = 4 * 2**20
