"""torch's thread count: how many cores this process may use, and a scoped setting."""

from __future__ import annotations

import contextlib
import os


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op threads set to ``n`` for the block (or the decorated function), then restored.

    Training uses one thread so results do not depend on the machine's core count, and
    small per-input passes use one because a second thread only waits on a busy machine.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
