"""Per-user cache of trained networks, keyed by everything that determines them.

The cache lives in ``$EQUIVTEST_CACHE`` if set, else ``~/.cache/equivtest``. Weights
are safetensors (no pickle), written to a temporary file and renamed, so a crash
never leaves half a file under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from equivtest._io import atomic_write_bytes


def cache_dir() -> Path:
    root = os.environ.get("EQUIVTEST_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "equivtest"


def config_key(config: dict) -> str:
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def cached_network(
    name: str,
    config: dict,
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], dict],
    log: Callable[[str], None] | None = None,
) -> tuple[nn.Module, dict]:
    """Load the network for ``config`` from the cache, or build, train and store it.

    Returns the network (in eval mode) and the training summary stored with it.
    """
    key = config_key({"name": name, "torch": torch.__version__.split("+")[0], **config})
    folder = cache_dir() / "zoo"
    weights, meta = folder / f"{name}-{key}.safetensors", folder / f"{name}-{key}.json"
    model = build()
    if weights.exists() and meta.exists():
        model.load_state_dict(load_file(weights))
        summary = json.loads(meta.read_text())
    else:
        if log:
            log(f"training {name} (first run; cached afterwards in {folder})")
        summary = train(model)
        folder.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_suffix(f".tmp{os.getpid()}")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, weights)
        atomic_write_bytes(meta, json.dumps(summary, indent=2).encode())
    model.eval()
    return model, summary


def fingerprint(model: nn.Module) -> str:
    """SHA-256 (first 16 hex digits) of a network's weights: names, dtypes, shapes and bytes.

    Two networks with one fingerprint compute the same numbers. Training is seeded and runs
    on one thread, so one machine always trains the same weights; another CPU may not: its
    math library picks other SIMD kernels (AVX2 against AVX-512), whose sums round
    differently, and the difference grows over the training steps."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


@contextmanager
def training_lock(name: str):
    """One process at a time inside (per ``name``): pytest-xdist runs suites that share a
    network in parallel workers; the second waits, then loads what the first cached."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, at worst both train the same weights
        yield
        return
    folder = cache_dir() / "zoo"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
