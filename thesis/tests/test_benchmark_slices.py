"""Smoke test of the slices benchmark (``benchmarks/slices.py``), which fits the vibration suite's networks.

Moved from tests/test_benchmark_smoke.py with the thesis's networks (equivtest_thesis).
"""

from __future__ import annotations

import numpy as np

from tests.test_benchmark_smoke import load_bench


def test_slices_benchmark_fits_both_ways_alike():
    # untrained networks of the vibration suite's shapes: the two ways must give the same fits
    import torch

    from equivtest_thesis.zoo.vibration import ConvTransformerNet, LstmNet

    slices = load_bench("slices")
    torch.manual_seed(0)
    lstm, transformer = LstmNet().eval(), ConvTransformerNet().eval()
    windows = np.random.default_rng(0).standard_normal((16, 100, 2)).astype(np.float32)
    result = slices.measure(lstm, transformer, windows, samples=12, neighbourhood=8, repeats=1)
    assert result["slice_lengths"] == [1, 2, 10, 25] and len(result["ratios"]) == 1
    assert result["prediction_gap"] < 1e-9
