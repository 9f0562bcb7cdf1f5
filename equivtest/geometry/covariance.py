"""Per-sample neighbourhood covariances and their truncated pseudo-inverses (step 4)."""

from __future__ import annotations

import numpy as np
import torch

from .._validation import as_finite_float64
from ..errors import FitConfigError
from ._parallel import over_row_ranges
from ._tensors import as_tensor

DEFAULT_RCOND = 1e-6


def neighbourhood_covariances(neighbourhood_activations) -> np.ndarray:
    """Sample covariance (``ddof=1``, as ``numpy.cov``) of each neighbourhood: ``(N, F, F)``."""
    nb = as_finite_float64(neighbourhood_activations, "neighbourhood activations", ndim=3)
    n, m, f = nb.shape
    if m < 2:
        raise FitConfigError(
            f"neighbourhoods have {m} point each; a covariance needs at least 2 "
            "(raise the neighbourhood size, the thesis uses 100 to 1024)"
        )
    # Shift by the first neighbour before centring: a feature constant over the
    # neighbourhood then has exactly zero variance whatever its value (the float mean
    # of m copies of 0.1 is not 0.1, which would leave a ~1e-34 residue).
    # Blocks of about 1 MB stay in cache through the three passes (shift, centre,
    # product); whole-stack temporaries made this 4x slower (measured at 2,000 x 100 x 24).
    block = max(1, _COV_BLOCK_BYTES // (8 * m * f))
    stack = as_tensor(nb)
    out = np.empty((n, f, f))
    out_t = torch.from_numpy(out)

    def rows(first: int, last: int) -> None:
        for start in range(first, last, block):
            stop = min(last, start + block)
            part = stack[start:stop]
            shifted = part - part[:, :1, :]
            shifted -= shifted.mean(dim=1, keepdim=True)
            torch.matmul(shifted.transpose(1, 2), shifted, out=out_t[start:stop])

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
    inversion: ``L_i L_i^T = U (S + ridge)^-1 U^T`` on the kept directions.
    """
    return _scaled_factors(*_truncated_eigh(covariances, rcond), ridge)


def _truncated_eigh(covariances, rcond: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``r`` eigenpairs of each covariance and which of them pass the ``rcond`` cut-off."""
    cov = np.asarray(covariances, dtype=np.float64)
    if not 0 <= rcond < 1:
        raise FitConfigError(f"rcond must lie in [0, 1), got {rcond}")
    evals, evecs = _batched_eigh(cov)  # ascending
    top = evals[:, -1:]
    keep = evals > np.maximum(rcond * top, np.finfo(np.float64).tiny)
    if not keep[:, -1].all():
        bad = int(np.flatnonzero(~keep[:, -1])[0])
        raise FitConfigError(
            f"the neighbourhood of sample {bad} has zero covariance: every neighbour maps to the "
            "same activation. The layer is saturated or constant there; raise delta or pick another layer"
        )
    rank = int(keep.sum(axis=1).max())
    return evals[:, -rank:], evecs[:, :, -rank:], keep[:, -rank:]


def _check_ridge(ridge: float) -> None:
    if not ridge >= 0:
        raise FitConfigError(f"the covariance ridge must be >= 0, got {ridge}")


def _scaled_factors(evals: np.ndarray, evecs: np.ndarray, keep: np.ndarray, ridge: float) -> np.ndarray:
    _check_ridge(ridge)
    scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, evals, 1.0) + ridge), 0.0)
    return evecs * scale[:, None, :]


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


CHUNK_BYTES = 512 * 2**20  # float64 neighbourhood activations converted at a time


def neighbourhood_precision_factors(
    neighbourhood_activations, rcond: float = DEFAULT_RCOND, chunk: int = 4096, ridge: float = 0.0
) -> np.ndarray:
    """Covariances and truncated precision factors, ``chunk`` samples at a time.

    ``chunk`` shrinks so that one chunk's activations take at most ``CHUNK_BYTES`` in
    float64: 2,600 neighbourhoods of 1024 x 400 values (the vibration suite's full
    profile) would otherwise be converted whole, 8.5 GB on top of the capture.

    Same result as ``precision_factors(neighbourhood_covariances(nb), rcond, ridge * v)``,
    where ``v`` is the median over samples of the mean per-feature variance of the
    neighbourhood (``trace(C_i) / F``): ``ridge`` is relative, so it means the same for a
    layer whatever its scale. The ``(N, F, F)`` covariances never exist at once, and
    ``neighbourhood_activations`` may be anything that slices along its first axis into
    ``(n, M, F)`` arrays (an array, a ``numpy.memmap``, or a lazy object that captures each
    chunk when asked), so the ``(N, M, F)`` neighbourhood activations need not fit in memory either.
    """
    n = len(neighbourhood_activations)
    if n == 0:
        raise FitConfigError("no neighbourhoods given; capture at least one sample")
    _check_ridge(ridge)  # before the pass over every neighbourhood, not after it
    shape = getattr(neighbourhood_activations, "shape", None)
    if shape is not None and len(shape) == 3:
        chunk = max(1, min(int(chunk), CHUNK_BYTES // (8 * int(shape[1]) * int(shape[2]) or 1)))
    parts, variances, rank = [], [], 0
    for start in range(0, n, int(chunk)):
        cov = neighbourhood_covariances(neighbourhood_activations[start : start + int(chunk)])
        variances.append(np.trace(cov, axis1=1, axis2=2) / cov.shape[1])
        evals, evecs, keep = _truncated_eigh(cov, rcond)
        rank = max(rank, evals.shape[1])
        parts.append((evals, evecs, keep))
    # the ridge needs every sample's variance, so the factors are scaled after the pass
    absolute = float(ridge) * float(np.median(np.concatenate(variances))) if ridge else 0.0
    f = parts[0][1].shape[1]
    out = np.zeros((n, f, rank))
    start = 0
    for evals, evecs, keep in parts:
        factors = _scaled_factors(evals, evecs, keep, absolute)
        # factors keep their top eigen-directions last; align them to the right
        out[start : start + len(factors), :, rank - factors.shape[2] :] = factors
        start += len(factors)
    return out
