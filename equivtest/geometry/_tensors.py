"""NumPy arrays handed to torch for reading only."""

from __future__ import annotations

import warnings

import numpy as np
import torch


def as_tensor(array: np.ndarray, device=None) -> torch.Tensor:
    """``torch.as_tensor`` without a copy, also for read-only arrays (memmaps, frozen inputs).

    torch warns that writing to such a tensor is undefined; the geometry code only reads
    its inputs, so the warning would be noise in every user's log.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.as_tensor(array, device=device)
