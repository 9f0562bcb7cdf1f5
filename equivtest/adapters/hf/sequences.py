"""Positions as samples, and bringing two networks' sequences to one length."""

from __future__ import annotations

import numpy as np

from ...errors import EquivtestError

ALIGNMENTS = ("trim", "pad", "resample")


def select_positions(length: int, positions, rng: np.random.Generator, where: str = "the sequence") -> np.ndarray:
    """At most ``positions`` random positions of ``range(length)`` (sorted), or the explicit list checked."""
    if isinstance(positions, (int, np.integer)):
        return np.sort(rng.choice(length, size=min(int(positions), length), replace=False))
    index = np.asarray(positions, dtype=int).reshape(-1)
    if index.size == 0:
        raise EquivtestError("positions is an empty list; give a count (e.g. 64) or at least one position")
    bad = index[(index < 0) | (index >= length)]
    if bad.size:
        raise EquivtestError(
            f"sequence position(s) {sorted(set(bad.tolist()))} requested beyond the length {length} of {where}; "
            f"positions must lie in 0..{length - 1} (the length after aligning the two networks), "
            "or give a count such as positions=64 to draw at most that many at random"
        )
    return index


def align_length(seq: np.ndarray, length: int, mode: str = "trim") -> np.ndarray:
    """``seq`` (``(..., T, f)``) brought to ``length`` positions.

    ``"trim"``/``"pad"`` (the thesis): cut the end off, or append the per-feature mean over
    positions. ``"resample"``: position j takes the nearest of the proportional positions
    ``j (T - 1) / (length - 1)``, so the first and last positions meet (e.g. [CLS] ... [SEP]
    against ... <sep> <cls>) and the ones between keep their relative place.
    """
    t = seq.shape[-2]
    if mode == "resample":
        if t == length:
            return seq
        index = np.rint(np.linspace(0, t - 1, length)).astype(int) if length > 1 else np.array([t - 1])
        return seq[..., index, :]
    if t >= length:
        return seq[..., :length, :]
    mean = seq.mean(axis=-2, keepdims=True)
    pad = np.broadcast_to(mean, (*seq.shape[:-2], length - t, seq.shape[-1]))
    return np.concatenate([seq, pad], axis=-2)
