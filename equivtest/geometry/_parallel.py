"""Row-parallel loops that stay fast on a busy machine.

torch's own threading (OpenMP) synchronises its threads at the end of every operation.
The geometry's loops run hundreds of small, cache-sized operations, and when other
processes hold the cores (a second pytest worker, a training run) each of those
barriers waits for a descheduled thread: measured on 2 shared cores, the Mahalanobis
distances at N=2000 took 6.6 s that way against 0.13 s on an idle machine, while torch
on one thread took 0.2 s on the same busy machine. So the rows are split into one
contiguous range per Python thread, each running torch (and BLAS) single-threaded: no
barrier between operations, and on an idle machine still every core.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, TypeVar

import numpy as np
import torch

from .._threads import torch_threads, usable_cores

T = TypeVar("T")


def usable_workers(n_rows: int, min_rows_per_worker: int) -> int:
    """Threads worth starting: at most the usable cores and torch's thread setting (so
    ``torch.set_num_threads(1)`` also keeps this code on one thread)."""
    return max(1, min(usable_cores(), torch.get_num_threads(), n_rows // max(1, min_rows_per_worker)))


def over_row_ranges(fn: Callable[[int, int], T], n_rows: int, min_rows_per_worker: int) -> list[T]:
    """``fn(start, stop)`` over contiguous ranges covering ``range(n_rows)``, one per thread.

    torch runs single-threaded meanwhile (restored afterwards); the work must release
    the GIL (torch and NumPy/LAPACK kernels do) for the threads to overlap.
    """
    workers = usable_workers(n_rows, min_rows_per_worker)
    bounds = np.linspace(0, n_rows, workers + 1).astype(int)
    # OpenBLAS's threads spin-wait the same way (NumPy's eigh on 4,096 64 x 64
    # matrices in two threads: 3.6 s with two BLAS threads each, 1.7 s with one).
    with torch_threads(1), _blas().limit(limits=1, user_api="blas"):
        if workers == 1:
            return [fn(0, n_rows)]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, bounds[:-1].tolist(), bounds[1:].tolist()))


@lru_cache(maxsize=1)
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # built once: a fresh scan of the loaded libraries costs about 1 ms
