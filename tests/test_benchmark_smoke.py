"""Smoke tests of the benchmark (``benchmarks/bench.py`` and ``benchmarks/reference.py``).

They check that the reference pipeline computes what equivtest computes (kernel,
covariances, capture). No timing is asserted: timings depend on the machine. A tiny
benchmark run, whose 1d stage samples as the thesis's experiment 1, and the slices
benchmark are tested with the thesis's package: thesis/tests/test_benchmark_thesis.py.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from equivtest.capture import capture_neighbourhoods
from equivtest.geometry import (
    mahalanobis_sq_dense,
    median_knn_epsilon,
    neighbourhood_covariances,
    precision_factors,
    pseudo_inverses,
)

from ._nets import tanh_mlp

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_bench(script: str = "bench"):
    name = f"equivtest_benchmark_{script}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{script}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def bench():
    return load_bench()


# --------------------------------------------------------------------------- the reference computes what equivtest computes


def test_reference_kernel_agrees_with_equivtest_kernel(bench):
    # N=40 samples in d=6: datafold's MahalanobisKernel at eps vs ours at 2 eps.
    x, nb = bench.manifold_data(40, d=6, m=30, seed=1)
    factors = precision_factors(neighbourhood_covariances(nb))
    eps = median_knn_epsilon(mahalanobis_sq_dense(x, factors))
    agreement = bench.kernel_agreement(x, factors, eps)
    assert agreement["off_diagonal"] == 40 * 39
    assert agreement["compared"] >= 40 * 39 // 2  # most values are compared, not underflowed
    assert agreement["min_value"] < 1e-3  # over a real range of kernel values
    assert agreement["max_rel_diff"] <= 1e-10
    assert agreement["passed"]


def test_kernel_agreement_detects_a_wrong_epsilon(bench):
    # Guard: the check must fail when the two kernels differ (here: the factor 2 left out).
    x, nb = bench.manifold_data(30, d=6, m=30, seed=2)
    factors = precision_factors(neighbourhood_covariances(nb))
    eps = median_knn_epsilon(mahalanobis_sq_dense(x, factors))
    ours = np.exp(-mahalanobis_sq_dense(x, factors) / eps)
    theirs = bench.ref.kernel_reference(x, pseudo_inverses(factors), eps)  # should be eps / 2
    assert bench.kernel_rel_diff(ours, theirs)["max_rel_diff"] > 1e-3


def test_reference_covariances_and_pinv_match_equivtest(bench):
    x, nb = bench.manifold_data(25, d=6, m=40, seed=3)
    covs = bench.ref.covariances_reference(nb)
    np.testing.assert_allclose(covs, neighbourhood_covariances(nb), rtol=1e-10, atol=1e-16)
    precs = bench.ref.pseudo_inverses_reference(covs)
    ours = pseudo_inverses(precision_factors(neighbourhood_covariances(nb)))
    assert np.max(np.abs(precs - ours)) / np.max(np.abs(ours)) < 1e-8


def test_reference_capture_matches_equivtest_capture(bench):
    net = tanh_mlp(0, (1, 8, 8, 1))
    rng = np.random.default_rng(0)
    samples = rng.uniform(-1, 1, size=(5, 1))
    nbhd = samples[:, None, :] + 0.01 * rng.normal(size=(5, 7, 1))
    ref_s, ref_nb = bench.ref.capture_reference(net, "act2", samples, nbhd)
    eq_s, eq_nb = capture_neighbourhoods(net, samples, nbhd, "act2")
    # single passes and batches may round differently in the last bit
    np.testing.assert_allclose(ref_s, eq_s, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ref_nb, eq_nb, rtol=1e-12, atol=1e-15)
    part_s, part_nb = bench.ref.capture_reference(net, "act2", samples, nbhd, n_samples=2)
    assert part_s.shape == (2, 8) and part_nb.shape == (2, 7, 8)


def test_parse_sizes_and_exponent(bench):
    specs = bench.parse_sizes("1d,2000,7218,300:dmaps")
    assert [(s.kind, s.n, s.dmaps) for s in specs] == [
        ("1d", None, False), ("synthetic", 2000, False), ("synthetic", 7218, True), ("synthetic", 300, True),
    ]
    with pytest.raises(SystemExit):
        bench.parse_sizes("1d,huge")
    ns = [100, 200, 400, 800]
    assert bench.fit_exponent(ns, [1e-6 * n**2 for n in ns]) == pytest.approx(2.0)



def test_widths_benchmark_measures_both_paths_and_writes_its_table(tmp_path, capsys):
    # benchmarks/widths.py at a toy size: both child processes run, the low-rank and the
    # dense path keep the same rank, and the JSON and the table say what was measured.
    widths = load_bench("widths")
    out = tmp_path / "widths.json"
    assert widths.main(["--widths", "40", "--n", "12", "--m", "8", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    (result,) = record["results"]
    low, dense = result["lowrank"], result["dense"]
    assert "error" not in low and "error" not in dense
    assert low["rank"] == dense["rank"] == 7  # M - 1: the noise keeps every direction
    assert dense["rows"] == 12 and not dense["extrapolated"]
    assert low["d2_finite"] and low["peak_gib"] >= low["factors_peak_gib"] > 0
    assert "| 40 | 7 |" in capsys.readouterr().out


def test_widths_benchmark_compares_a_device_with_the_cpu(tmp_path, capsys):
    # --device runs the low-rank path again there (here the CPU through torch) and compares
    widths = load_bench("widths")
    out = tmp_path / "widths.json"
    assert widths.main(["--widths", "40", "--n", "12", "--m", "8", "--device", "cpu", "--no-dense",
                        "--out", str(out)]) == 0
    (result,) = json.loads(out.read_text())["results"]
    device = result["lowrank_device"]
    assert result["dense"] == {"error": "skipped (--no-dense)"}
    assert device["device"] == "cpu" and device["rank"] == result["lowrank"]["rank"] == 7
    assert device["max_rel_diff_precision"] < 1e-10 and device["max_rel_diff_distances"] < 1e-10
    assert "| 40 | " in capsys.readouterr().out.split("ratio = CPU seconds")[0].split("| F | CPU factors s")[1]

