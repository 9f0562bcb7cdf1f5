"""Smoke tests of the benchmarks that run the thesis's experiments.

``benchmarks/bench.py``'s 1d stage samples as experiment 1 does
(``equivtest_thesis.experiments.one_d``), and ``benchmarks/slices.py`` fits the vibration
suite's networks. Moved from tests/test_benchmark_smoke.py with the thesis's package; the
reference-against-equivtest checks stay there.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from equivtest import NetworkPair
from tests._nets import tanh_mlp
from tests.test_benchmark_smoke import bench, load_bench  # noqa: F401  (bench: a fixture)


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


# --------------------------------------------------------------------------- JSON structure of a tiny run


def test_tiny_benchmark_writes_the_json_structure(bench, tmp_path):
    tiny = replace(
        bench.QUICK,
        name="tiny",
        one_d_samples=32,
        one_d_neighbours=12,
        dmaps_eigenvectors=4,
        growth_sizes=(40, 60, 80, 100),
        growth_eigenvectors=4,
        repeats=1,
        capture_probe=4,
        capture_budget_s=0.0,  # forces the extrapolated capture path
        kernel_budget_s=0.0,  # forces the extrapolated datafold kernel for N > kernel_subset
        kernel_subset=30,
        agreement_samples=30,
    )
    pair = NetworkPair(tanh_mlp(0, (1, 1, 1)), tanh_mlp(1, (1, 8, 8, 8, 1)), "act1", "act3", name="tiny")
    result = bench.run_benchmark(tiny, "1d,60:dmaps,40", pair=pair)
    data = json.loads(bench.write_json(result, tmp_path / "sub" / "benchmark.json").read_text())

    assert data["schema"] == "equivtest.benchmark" and data["schema_version"] == 1
    assert data["sizes"] == ["1d", "60:dmaps", "40"]
    machine = data["machine"]
    for key in ("cpu_count", "cpus_usable", "platform", "python", "versions"):
        assert key in machine
    assert machine["cpu_count"] >= 1
    for lib in ("equivtest", "numpy", "scipy", "torch", "datafold"):
        assert machine["versions"][lib]

    by_name = {r["name"]: r for r in data["results"]}
    assert [r["stage"] for r in by_name["1d"]["stages"]] == ["capture", "kernel", "dmaps", "interpolation", "total"]
    assert [r["stage"] for r in by_name["60:dmaps"]["stages"]] == ["kernel", "dmaps", "total"]
    assert [r["stage"] for r in by_name["40"]["stages"]] == ["kernel"]
    for res in data["results"]:
        for row in res["stages"]:
            assert set(row) >= {"stage", "reference_s", "reference_how", "equivtest_s", "ratio", "equivtest_runs"}
            assert row["reference_s"] > 0 and row["equivtest_s"] > 0
            assert row["ratio"] == pytest.approx(row["reference_s"] / row["equivtest_s"])
            assert row["reference_how"] in ("measured", "extrapolated")
        for agreement in res["kernel_agreement"].values():
            assert agreement["max_rel_diff"] <= 1e-10 and agreement["passed"]
    capture = by_name["1d"]["stages"][0]
    assert capture["reference_how"] == "extrapolated" and "scaled linearly" in capture["reference_note"]
    assert by_name["1d"]["stages"][-1]["reference_how"] == "extrapolated"  # the total inherits it
    assert by_name["1d"]["info"]["capture_max_abs_diff"] < 1e-12
    assert by_name["60:dmaps"]["stages"][0]["reference_how"] == "extrapolated"
    assert by_name["60:dmaps"]["stages"][0]["parts"]["datafold_kernel_subset_s"] > 0
    assert set(by_name["1d"]["kernel_agreement"]) == {"a", "b"}
    assert data["kernel_agreement"]["passed"] is True

    growth = data["growth"]
    assert [p["n"] for p in growth["points"]] == [40, 60, 80, 100]
    assert math.isfinite(growth["exponent_kernel_dmaps"]) and math.isfinite(growth["exponent_kernel_matrix"])

    bench.render(result)  # the table renders from the same dict
