"""Memory-aware rows: float32 rows, a memory budget that streams rows from disk, peak memory per stage."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import numpy as np
import pytest

from equivtest import FitConfig, NetworkPair
from equivtest._memory import DiskRows, RowStore, StagePeaks, parse_bytes
from equivtest.capture import capture
from equivtest.engine import fit
from equivtest.errors import FitConfigError
from equivtest.geometry.covariance import neighbourhood_precision_factors
from equivtest.record import load_record, write_run
from equivtest.sampling import GaussianNeighbourhood, GridPoints, Sampler

from ._nets import tanh_mlp

SAMPLER = Sampler(GridPoints(-1.0, 1.0, 96), GaussianNeighbourhood(48, 0.05), seed=0)
WIDTHS = (1, 24, 24, 1)
# 96 rows x 48 neighbours x 24 features: 0.44 MB of float32 neighbourhood rows per network and
# 0.42 MB of precision factors, against 0.37 MB that any fit of 96 x 24 rows holds: with
# 0.7 MB both networks' neighbourhood rows and their factors go to disk
BUDGET = 700_000
TEST_X = np.linspace(-1.0, 1.0, 40)[:, None]


@pytest.fixture(scope="module")
def pair32():
    return NetworkPair(tanh_mlp(0, WIDTHS).float(), tanh_mlp(1, WIDTHS).float(), "act2", "act2")


@pytest.fixture(scope="module")
def in_memory(pair32):
    return fit(pair32, SAMPLER, FitConfig())


def test_parse_bytes_forms_and_errors():
    assert parse_bytes(4096) == 4096
    assert parse_bytes("4GiB") == 4 * 2**30
    assert parse_bytes("512 MB") == 512 * 10**6
    assert parse_bytes("2.5G") == 2_500_000_000
    for bad in ("4 furlongs", "", True, 1.5, 0, "-1GB", None):
        with pytest.raises(FitConfigError, match="memory_budget"):
            parse_bytes(bad)


def test_config_validates_budget_and_scratch_dir():
    assert FitConfig(memory_budget="1MiB").budget_bytes == 2**20
    assert FitConfig().budget_bytes is None
    with pytest.raises(FitConfigError, match="memory_budget must be"):
        FitConfig(memory_budget="lots")
    with pytest.raises(FitConfigError, match="scratch_dir"):
        FitConfig(scratch_dir=3)
    assert "memory_budget" not in FitConfig(memory_budget=10**9).transformation(("a", "b")).get_params()


def test_rows_keep_the_networks_precision(pair32, in_memory):
    for side in ("a", "b"):
        rows, nb = in_memory.activations[side]
        assert rows.dtype == np.float32 and nb.dtype == np.float32
    pair64 = NetworkPair(tanh_mlp(0, WIDTHS), tanh_mlp(1, WIDTHS), "act2", "act2")
    fitted64 = fit(pair64, Sampler(GridPoints(-1.0, 1.0, 32), GaussianNeighbourhood(8, 0.05), seed=0), FitConfig())
    assert fitted64.activations["a"][0].dtype == np.float64 and fitted64.activations["a"][1].dtype == np.float64
    # capture's own default stays float64 (test rows and outputs)
    assert capture(pair32.side("a").module, TEST_X, "act2").dtype == np.float64


def test_float32_rows_give_the_fit_of_their_float64_values(pair32, in_memory):
    """Converting float32 rows to float64 is exact, so a fit on the float64 copies is the same fit."""
    widened = {side: tuple(np.asarray(part, dtype=np.float64) for part in in_memory.activations[side]) for side in "ab"}
    again = FitConfig().transformation(pair32.names).fit(*widened["a"], *widened["b"])
    for side in ("side_a_", "side_b_"):
        np.testing.assert_array_equal(getattr(again, side).coordinates, getattr(in_memory.transformation, side).coordinates)


def test_budget_streams_rows_from_disk_with_the_same_results(pair32, in_memory, tmp_path):
    streamed = fit(pair32, SAMPLER, FitConfig(memory_budget=BUDGET, scratch_dir=str(tmp_path)))
    assert all(isinstance(streamed.activations[side][1], DiskRows) for side in "ab")
    assert {entry["rows"] for entry in streamed.memory["streamed"]} == {"neighbourhoods-a", "neighbourhoods-b",
                                                                         "precision factors"}
    assert streamed.memory["budget_bytes"] == BUDGET and streamed.memory["rows_in_memory_bytes"] <= BUDGET
    for side in ("side_a_", "side_b_"):
        mine, theirs = getattr(streamed.transformation, side), getattr(in_memory.transformation, side)
        np.testing.assert_array_equal(mine.coordinates, theirs.coordinates)
        np.testing.assert_array_equal(mine.eigenvalues, theirs.eigenvalues)
    for side in "ab":
        np.testing.assert_array_equal(streamed.activations[side][1][:], in_memory.activations[side][1])
    got = {(c.name, c.direction): c.value for c in streamed.evaluate(TEST_X).criteria}
    want = {(c.name, c.direction): c.value for c in in_memory.evaluate(TEST_X).criteria}
    assert got.keys() == want.keys()
    assert all(got[k] == want[k] for k in want), {k: (got[k], want[k]) for k in want if got[k] != want[k]}
    folders = list(tmp_path.iterdir())
    assert folders and all(f.name.startswith("equivtest-rows-") for f in folders)
    del streamed
    gc.collect()
    assert list(tmp_path.iterdir()) == []  # the files go with the last array that used them


def test_budget_with_drawn_rows_matches_in_memory(pair32):
    config = dict(max_rows=64)
    plain = fit(pair32, SAMPLER, FitConfig(**config))
    streamed = fit(pair32, SAMPLER, FitConfig(memory_budget=BUDGET, **config))
    assert any(isinstance(streamed.activations[side][1], DiskRows) for side in "ab")
    np.testing.assert_array_equal(streamed.transformation.side_b_.coordinates, plain.transformation.side_b_.coordinates)


def test_budget_below_what_must_stay_in_memory_is_refused(pair32):
    with pytest.raises(FitConfigError, match=r"raise memory_budget to at least .*max_rows"):
        fit(pair32, SAMPLER, FitConfig(memory_budget="100kB"))


def test_disk_rows_read_and_write_blocks(tmp_path):
    store = RowStore(budget=1, scratch_dir=str(tmp_path))
    rows = store.array((10, 3, 2), np.float32, "rows")
    assert isinstance(rows, DiskRows) and rows.shape == (10, 3, 2) and len(rows) == 10
    data = np.arange(60, dtype=np.float32).reshape(10, 3, 2)
    rows[:] = data
    np.testing.assert_array_equal(rows[2:5], data[2:5])
    np.testing.assert_array_equal(rows[[7, 1]], data[[7, 1]])
    np.testing.assert_array_equal(rows[np.array([0, 9]), :2], data[np.array([0, 9]), :2])
    np.testing.assert_array_equal(rows[4], data[4])
    np.testing.assert_array_equal(np.asarray(rows), data)
    assert not list(Path(rows.path).parent.glob("*.partial"))


def test_factors_on_disk_equal_factors_in_memory(tmp_path):
    rng = np.random.default_rng(0)
    nb = rng.normal(size=(40, 12, 30)).astype(np.float32)
    want = neighbourhood_precision_factors(nb)
    store = RowStore(budget=1, scratch_dir=str(tmp_path))
    got = neighbourhood_precision_factors(nb, allocate=store.factors)
    assert isinstance(got, np.memmap)
    np.testing.assert_array_equal(got, want)


def _linux_peaks() -> StagePeaks:
    peaks = StagePeaks()
    if not peaks.resettable:
        pytest.skip("the peak resident set cannot be reset here (no writable /proc/self/clear_refs)")
    return peaks


def test_a_stage_that_allocates_a_large_array_shows_it():
    peaks = _linux_peaks()
    size = 200 * 2**20
    peaks.stage("small")
    small = np.ones(1000)
    peaks.stage("large")
    large = np.ones(size // 8)  # written, so resident
    del large
    peaks.stage("after")
    result = peaks.finish()
    assert result["large"] >= size
    assert result["after"] < result["large"] - size // 2  # reset: the freed array is not counted again
    assert small.sum() == 1000 and set(result) == {"small", "large", "after"}


def test_fit_and_evaluate_record_peak_memory_per_stage(pair32, in_memory, tmp_path):
    peaks = in_memory.memory["peak_bytes"]
    assert {"capture", "geometry_a", "kernel_a", "geometry_b", "kernel_b", "interpolants"} <= set(peaks)
    assert all(isinstance(v, int) and 10 * 2**20 < v < 64 * 2**30 for v in peaks.values())
    result = in_memory.evaluate(TEST_X)
    path = write_run(in_memory, result, tmp_path)
    record = load_record(path)["memory"]
    assert record["measure"].startswith(("VmHWM", "ru_maxrss"))
    assert set(record["fit_peak_bytes"]) == set(peaks)
    assert {"test_capture", "criteria", "reference_measures"} <= set(record["evaluate_peak_bytes"])
    assert record["budget_bytes"] is None and record["streamed"] == []
    json.dumps(record)
    assert os.path.exists(path)


def test_budget_with_slice_lengths_streams_each_fit_with_the_same_results():
    """Rows a pairing gives in memory (here cut from one capture) go to disk when over the budget."""
    from equivtest import LayerSpec, fit_slice_lengths
    from equivtest._memory import held_bytes
    from equivtest.sampling import DatasetPoints

    from .test_sequences import ConvNet, LstmNet, smooth_sequences

    sampler = Sampler(DatasetPoints(smooth_sequences(60), 60), GaussianNeighbourhood(16, 1e-4), seed=0)
    pair = NetworkPair(ConvNet(seed=3), LstmNet(seed=2), LayerSpec("act", layout="bfs"),
                       LayerSpec("lstm", output=0, layout="bsf"), name="toy")
    config = FitConfig(n_eigenvectors=4, max_rows=100)
    plain = next(fit_slice_lengths(pair, sampler, (4,), config))
    rows = plain.activations["a"][0]
    budget = held_bytes(*rows.shape) + sum(plain.activations[s][0].nbytes for s in "ab") + 1
    streamed = next(fit_slice_lengths(pair, sampler, (4,), FitConfig(n_eigenvectors=4, max_rows=100, memory_budget=budget)))
    assert all(isinstance(streamed.activations[s][1], DiskRows) for s in "ab")
    for side in "ab":
        np.testing.assert_array_equal(streamed.activations[side][1][:], plain.activations[side][1])
    np.testing.assert_array_equal(streamed.transformation.side_a_.coordinates, plain.transformation.side_a_.coordinates)


def test_copies_of_the_dmap_kernel_share_the_precision_factors():
    """datafold deep-copies its kernel in every fit; the factors (gigabytes at real widths) are not copied."""
    import copy

    from equivtest.geometry.dmaps import MahalanobisDmapKernel

    factors = np.ones((5, 4, 3))
    kernel = MahalanobisDmapKernel(factors, 0.5)
    twin = copy.deepcopy(kernel)
    assert twin.factors is factors and twin is not kernel and twin.epsilon == 0.5
    twin.epsilon = 2.0
    assert kernel.epsilon == 0.5


def _rss_file() -> int:
    """Bytes of file-mapped pages resident in this process (Linux)."""
    status = Path("/proc/self/status")
    line = next((s for s in status.read_text().splitlines() if s.startswith("RssFile:")), None) if status.exists() else None
    if line is None:
        pytest.skip("no RssFile in /proc/self/status on this platform")
    return int(line.split()[1]) * 1024


def test_the_kernel_keeps_only_a_block_of_file_mapped_factors_resident(tmp_path):
    from equivtest._memory import drop_pages
    from equivtest.geometry.kernel import mahalanobis_sq_dense

    rng = np.random.default_rng(0)
    n, f, r = 400, 512, 48  # 79 MB of float64 factors in a file, as a memory budget makes them
    x = rng.normal(size=(n, f))
    factors = np.memmap(tmp_path / "factors", dtype=np.float64, mode="w+", shape=(n, f, r))
    for start in range(0, n, 50):
        factors[start : start + 50] = rng.normal(size=(50, f, r))
    in_memory = np.array(factors)
    drop_pages(factors)  # none of the file resident to begin with

    # the measure can see the factors: reading them all makes them resident, dropping them undoes it
    before = _rss_file()
    assert float(np.asarray(factors).sum()) == pytest.approx(float(in_memory.sum()))
    assert _rss_file() - before > 0.75 * factors.nbytes
    drop_pages(factors)
    assert _rss_file() - before < 0.1 * factors.nbytes

    before = _rss_file()
    d2 = mahalanobis_sq_dense(x, factors)
    assert _rss_file() - before < 0.25 * factors.nbytes  # blocks of a few rows, dropped as they are read
    np.testing.assert_array_equal(d2, mahalanobis_sq_dense(x, in_memory))
    np.testing.assert_array_equal(factors, in_memory)  # dropped pages come back from the file intact


def test_factors_written_to_a_file_do_not_stay_resident(tmp_path):
    rng = np.random.default_rng(1)
    nb = rng.normal(size=(300, 48, 600)).astype(np.float32)  # factors: 300 x 600 x 47 float64, 68 MB
    store = RowStore(budget=1, scratch_dir=str(tmp_path))
    before = _rss_file()
    got = neighbourhood_precision_factors(nb, allocate=store.factors)
    assert isinstance(got, np.memmap) and got.nbytes > 60e6
    assert _rss_file() - before < 0.25 * got.nbytes  # written a block at a time, each block's pages dropped
    np.testing.assert_array_equal(got, neighbourhood_precision_factors(nb))
