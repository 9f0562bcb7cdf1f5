"""Shares of binary labels, for the sentiment suites' tables and thresholds."""

from __future__ import annotations

import numpy as np


def positive_rate(labels) -> float:
    """Share of labels equal to 1 (NaN for no labels)."""
    return float(np.mean(np.asarray(labels) == 1)) if len(labels) else float("nan")


def majority_share(labels) -> float:
    """What a network that ignores its input agrees with these labels: the larger class's share."""
    rate = positive_rate(labels)
    return max(rate, 1 - rate)
