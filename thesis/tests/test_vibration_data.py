"""The vibration suite's data layer: the shipped CWRU copy and leak-free, balanced splits."""

import builtins
import io
import json
import os
from collections import Counter
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

import equivtest_thesis.data
from equivtest.errors import EquivtestError
from equivtest_thesis.zoo import vibration_data as vd

WINDOW = 100
DATA_DIR = Path(equivtest_thesis.data.__file__).resolve().parent


@pytest.fixture(scope="module")
def recordings():
    return vd.load_recordings()


@pytest.fixture(scope="module")
def binary():
    return vd.make_splits(seed=0)


@pytest.fixture(scope="module")
def four_class():
    return vd.make_splits(seed=0, task="4class")


def raw_windows(split, recordings, window=WINDOW):
    """The un-normalised signal of every window of ``split``, cut again from the recordings."""
    return np.stack(
        [recordings[k].signal[s : s + window] for k, s in zip(split.meta["key"], split.meta["start"])]
    ).astype(np.float64)


def test_shipped_copy_is_small_and_matches_its_index(recordings):
    npz, index_file = DATA_DIR / vd.NPZ_NAME, DATA_DIR / vd.INDEX_NAME
    assert npz.stat().st_size + index_file.stat().st_size < 8e6
    index = json.loads(index_file.read_text())
    assert "Bearing Data Center" in index["licence"] and "Smith and Randall" in index["licence"]
    with np.load(npz) as data:
        stored = {name for name in data.files if not name.startswith("_")}
    assert stored == {entry["key"] for entry in index["recordings"]} == set(recordings)
    for entry in index["recordings"]:
        for field in ("fault", "diameter_mils", "load_hp", "outer_race_position", "rpm", "original_length"):
            assert field in entry
        assert entry["start_offset"] + entry["length_kept"] <= entry["original_length"]
        rec = recordings[entry["key"]]
        assert rec.signal.shape == (entry["length_kept"], 2) and rec.signal.dtype == np.float32
        assert np.isfinite(rec.signal).all()
    assert [rec.key for rec in recordings.values() if rec.fault == "normal"] == ["f97"]
    # the 28 mil recordings have no fan-end channel and are left out, with the reason
    assert {entry["key"] for entry in index["excluded"]} == {f"f300{i}" for i in range(1, 9)}


def test_load_recordings_reads_only_the_package(monkeypatch):
    opened = []

    def name_of(file):  # a path, or an open file's name
        if isinstance(file, (str, bytes, os.PathLike)):
            return os.fsdecode(file)
        return str(getattr(file, "name", file))

    def guard(real):
        def guarded(file, *args, **kwargs):
            name = name_of(file)
            opened.append(name)
            if "/shared/" in name:
                raise AssertionError(f"opened {name} under /shared/")
            return real(file, *args, **kwargs)

        return guarded

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    monkeypatch.setattr(np, "load", guard(np.load))
    recordings = vd.load_recordings()
    assert len(recordings) == 53
    npz_opened = [Path(name).resolve() for name in opened if name.endswith(vd.NPZ_NAME)]
    assert npz_opened and all(path.parent == DATA_DIR for path in npz_opened)
    assert resources.files("equivtest_thesis.data").joinpath(vd.NPZ_NAME).is_file()


@pytest.mark.parametrize("which", ["binary", "four_class"])
def test_splits_never_overlap_in_time(which, request):
    splits = request.getfixturevalue(which)
    by_key: dict[str, list[tuple[int, int]]] = {}
    for order, split in enumerate(splits):
        for key, start in zip(split.meta["key"], split.meta["start"]):
            by_key.setdefault(str(key), []).append((int(start), order))
    assert len(by_key) == 53
    for key, windows in by_key.items():
        windows.sort()
        starts = np.array([s for s, _ in windows])
        order = np.array([o for _, o in windows])
        # no two windows share a time step, in one split or across splits ...
        assert np.all(np.diff(starts) >= WINDOW), key
        # ... and time runs train, then validation, then test, each a block
        assert np.all(np.diff(order) >= 0), key
        for later in (1, 2):
            earlier_end = starts[order < later].max(initial=-WINDOW) + WINDOW
            assert starts[order >= later].min(initial=10**9) >= earlier_end + WINDOW, key  # a one-window gap


def test_no_window_crosses_a_segment_boundary(binary, four_class, recordings):
    for splits in (binary, four_class):
        for key, rec in recordings.items():
            seg = splits.segments[key]
            assert seg["train"][0] == 0 and seg["test"][1] == len(rec.signal)
            assert seg["val"][0] >= seg["train"][1] + WINDOW and seg["test"][0] >= seg["val"][1] + WINDOW
        for name, split in zip(vd.SPLITS, splits):
            for key, start in zip(split.meta["key"], split.meta["start"]):
                lo, hi = splits.segments[str(key)][name]
                assert lo <= start and start + WINDOW <= hi, (name, key, start)
                assert (start - lo) % WINDOW == 0


def test_x_holds_only_the_two_accelerometer_channels(binary, recordings):
    for split in binary:
        n = len(split.y)
        assert split.x.shape == (n, WINDOW, 2) and split.x.dtype == np.float32
        assert set(split.meta) == set(vd.META_FIELDS)
        assert all(len(values) == n for values in split.meta.values())
        # x is exactly the normalised sensor signal of the window, nothing appended
        expected = (raw_windows(split, recordings) - binary.mean) / binary.std
        np.testing.assert_allclose(split.x, expected, rtol=0, atol=1e-5)
        assert np.all(split.x.std(axis=1) > 0)  # no constant (metadata-like) channel
    # why load and speed must stay out: every normal window is at 0 hp and 1796 rpm
    meta = binary.train.meta
    assert set(meta["load_hp"][binary.train.y == 0]) == {0}
    assert set(meta["rpm"][binary.train.y == 0]) == {1796.0}
    assert set(meta["load_hp"][binary.train.y == 1]) == {0, 1, 2, 3}


def test_normalisation_uses_training_statistics_only(binary, recordings):
    train_raw = raw_windows(binary.train, recordings)
    np.testing.assert_allclose(binary.mean, train_raw.mean(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(binary.std, train_raw.std(axis=(0, 1)), rtol=1e-12)
    everything = np.concatenate([raw_windows(split, recordings) for split in binary])
    assert np.abs(everything.mean(axis=(0, 1)) - binary.mean).max() > 1e-5
    train_x = binary.train.x.astype(np.float64)
    np.testing.assert_allclose(train_x.mean(axis=(0, 1)), 0, atol=1e-6)
    np.testing.assert_allclose(train_x.std(axis=(0, 1)), 1, atol=1e-5)
    assert np.abs(binary.test.x.astype(np.float64).mean(axis=(0, 1))).max() > 1e-4


@pytest.mark.parametrize("which", ["binary", "four_class"])
def test_classes_are_balanced_in_every_split(which, request):
    splits = request.getfixturevalue(which)
    n_classes = len(splits.classes)
    for split in splits:
        counts = np.bincount(split.y, minlength=n_classes)
        assert len(counts) == n_classes and counts.max() - counts.min() <= 1, counts
    # the normal class uses every normal window of the training segment
    assert np.sum(splits.train.y == 0) == len(vd.window_starts(splits.segments["f97"]["train"], WINDOW))


@pytest.mark.parametrize("which", ["binary", "four_class"])
def test_fault_windows_spread_evenly_over_cells(which, request, recordings):
    splits = request.getfixturevalue(which)
    faults = [rec for rec in recordings.values() if rec.fault != "normal"]
    groups = [vd.FAULT_TYPES] if splits.task == "binary" else [(f,) for f in vd.FAULT_TYPES]
    for split in splits:
        meta = split.meta
        per_cell = Counter(zip(meta["fault"], meta["diameter_mils"], meta["load_hp"]))
        per_recording = Counter(meta["key"])
        for group in groups:
            cells = {(r.fault, r.diameter_mils, r.load_hp) for r in faults if r.fault in group}
            counts = [per_cell[cell] for cell in cells]  # cells with no window count as 0
            assert max(counts) - min(counts) <= 1, (group, counts)
        for cell in {(r.fault, r.diameter_mils, r.load_hp) for r in faults}:
            in_cell = [per_recording[r.key] for r in faults if (r.fault, r.diameter_mils, r.load_hp) == cell]
            assert max(in_cell) - min(in_cell) <= 1, cell  # outer-race positions in turn
    assert len({(r.fault, r.diameter_mils, r.load_hp) for r in faults}) == 36  # 3 types x 3 sizes x 4 loads


def test_deterministic_from_seed(binary):
    again = vd.make_splits(seed=0)
    other = vd.make_splits(seed=1)
    for a, b, c in zip(binary, again, other):
        np.testing.assert_array_equal(a.x, b.x)
        np.testing.assert_array_equal(a.y, b.y)
        for field in vd.META_FIELDS:
            np.testing.assert_array_equal(a.meta[field], b.meta[field])
        assert not np.array_equal(a.x, c.x)
    noisy = [vd.make_splits(seed=2, noise_snr_db=10) for _ in range(2)]
    np.testing.assert_array_equal(noisy[0].test.x, noisy[1].test.x)
    assert not np.array_equal(noisy[0].test.x, vd.make_splits(seed=3, noise_snr_db=10).test.x)


def test_four_class_labels(four_class):
    assert four_class.classes == ("normal", "ball", "inner_race", "outer_race")
    label_of = {"normal": 0, "B": 1, "IR": 2, "OR": 3}
    for split in four_class:
        assert set(split.y) == {0, 1, 2, 3}
        np.testing.assert_array_equal(split.y, [label_of[f] for f in split.meta["fault"]])


def test_noise_is_added_at_the_stated_snr(recordings):
    clean = vd.make_splits(seed=5)
    for reference in vd.NOISE_REFERENCES:
        noisy = vd.make_splits(seed=5, noise_snr_db=10, noise_reference=reference)
        np.testing.assert_array_equal(noisy.test.meta["start"], clean.test.meta["start"])  # same windows
        signal = raw_windows(clean.test, recordings)
        noise = noisy.test.x.astype(np.float64) * noisy.std + noisy.mean - signal
        noise_power = np.mean(noise**2, axis=1)  # (n, channels)
        if reference == "window":
            snr_db = 10 * np.log10(np.mean(signal**2, axis=1) / noise_power)
            assert abs(np.median(snr_db) - 10) < 0.5
        else:
            normal_power = np.mean(raw_windows(clean.train, recordings)[clean.train.y == 0] ** 2, axis=(0, 1))
            np.testing.assert_allclose(noise_power.mean(axis=0), normal_power / 10, rtol=0.05)
            loud = np.mean(signal**2, axis=1)[:, 0] > 4 * normal_power[0]
            assert loud.any()  # a fixed floor: loud windows get no more noise than quiet ones
            assert abs(noise_power[loud, 0].mean() / noise_power[~loud, 0].mean() - 1) < 0.1


def test_nan_in_a_recording_raises_a_clear_error(monkeypatch, recordings):
    def with_nan():
        out = dict(recordings)
        signal = out["f118"].signal.copy()
        signal[5000, 1] = np.nan
        out["f118"] = replace(out["f118"], signal=signal)
        return out

    monkeypatch.setattr(vd, "load_recordings", with_nan)
    with pytest.raises(EquivtestError, match="f118") as info:
        vd.make_splits(seed=0)
    assert isinstance(info.value, vd.VibrationDataError)
    assert "5000" in str(info.value) and "fan_end" in str(info.value)
    assert "tools/make_cwru_subset.py" in str(info.value)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fractions": (0.6, 0.3, 0.3)}, "summing to 1"),
        ({"task": "3class"}, "task must be"),
        ({"window": 5000}, "holds no window"),
        ({"noise_snr_db": 10, "noise_reference": "peak"}, "noise_reference"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(EquivtestError, match=message):
        vd.make_splits(**kwargs)
