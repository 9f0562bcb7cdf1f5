"""The vibration suite's data: windows of CWRU bearing vibration, split without leaks.

Samples are windows of ``window`` (default 100) time steps of the two accelerometer
channels, drive end and fan end (12 kHz, in g, then normalised); ``x`` has shape
``(n, window, 2)`` (batch, time, channel). The task, as in the thesis, is fault
detection: normal (label 0) against any bearing fault (label 1); ``task="4class"``
labels normal 0, ball 1, inner race 2, outer race 3.

The data is the package's own compact copy (``equivtest_thesis/data``, built by
``thesis/tools/make_cwru_subset.py``); nothing here reads outside the package.

Three pitfalls, and what :func:`make_splits` does about them:

* **Windows overlapping in time across splits.** Each recording is first cut into
  disjoint contiguous time segments by ``fractions`` (train, a gap of one window,
  validation, a gap, test); only then is each segment cut into non-overlapping
  windows. No window crosses a segment boundary.
* **Operating conditions as features.** Motor load and speed are not in ``x``: the
  only normal recording is at 0 hp (1796 rpm), so either would give the label away.
  They are returned per window in ``meta``, apart from ``x``.
* **Normalisation from all data.** The per-channel mean and standard deviation come
  from the training windows only and are applied to all three splits (and returned).

Classes are balanced in every split. The normal class uses every normal window of the
split (unless a fault class cannot match that many evenly, then a seeded subset);
fault windows are drawn evenly over the (fault type, diameter, load) cells, each cell
giving ``n // cells`` windows and a seeded choice of cells one more, and within a cell
in turn from its recordings (the outer-race positions). With the 28 mil recordings
left out of the copy (they lack the fan-end channel), fault types, diameters (7, 14,
21 mil) and loads (0-3 hp) form a full 3 x 3 x 4 grid, so "even over cells" is also
even over fault type, diameter and load.

Everything is deterministic from ``seed``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from equivtest.errors import EquivtestError

DATA_PACKAGE = "equivtest_thesis.data"
NPZ_NAME = "cwru_12k_subset.npz"
INDEX_NAME = "cwru_index.json"
SAMPLING_RATE_HZ = 12_000
CHANNELS = ("drive_end", "fan_end")
FAULT_TYPES = ("B", "IR", "OR")
TASKS = ("binary", "4class")
CLASS_NAMES = {
    "binary": ("normal", "fault"),
    "4class": ("normal", "ball", "inner_race", "outer_race"),
}
SPLITS = ("train", "val", "test")
NOISE_REFERENCES = ("window", "normal")
META_FIELDS = ("key", "fault", "diameter_mils", "load_hp", "outer_race_position", "rpm", "start")


class VibrationDataError(EquivtestError):
    """The vibration data or the split asked of it is unusable."""


@dataclass(frozen=True)
class Recording:
    """One recording of the compact copy: ``signal`` is (length_kept, 2) float32 in g."""

    key: str
    fault: str  # "normal", "B", "IR" or "OR"
    diameter_mils: int
    load_hp: int
    outer_race_position: int  # o'clock of an outer-race fault, 0 otherwise
    rpm: float | None
    original_length: int
    start_offset: int  # where the kept stretch starts in the original recording
    signal: np.ndarray = field(repr=False)


@dataclass
class Split:
    """One split: ``x`` (n, window, 2) float32, ``y`` (n,) int64, ``meta`` per window.

    ``meta`` maps each of ``META_FIELDS`` to an array of length n; ``start`` is the
    window's first index in the shipped stretch of its recording (add the recording's
    ``start_offset`` for the original file). Unpacks as ``x, y = split``.
    """

    x: np.ndarray
    y: np.ndarray
    meta: dict[str, np.ndarray]

    def __iter__(self):
        return iter((self.x, self.y))

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class VibrationSplits:
    """Train, validation and test splits with the normalisation and the cut used.

    ``mean`` and ``std`` (per channel, in g, from the training windows only) were
    subtracted and divided out of every split's ``x``. ``segments[key][split]`` is the
    ``(start, end)`` time range of that recording the split's windows come from.
    """

    train: Split
    val: Split
    test: Split
    mean: np.ndarray
    std: np.ndarray
    task: str
    classes: tuple[str, ...]
    segments: dict[str, dict[str, tuple[int, int]]]
    seed: int
    window: int
    noise_snr_db: float | None
    noise_reference: str

    def __iter__(self):
        return iter((self.train, self.val, self.test))


def load_index() -> dict:
    """The copy's metadata: source, licence, storage and one entry per recording."""
    with resources.files(DATA_PACKAGE).joinpath(INDEX_NAME).open("r", encoding="utf-8") as fh:
        return json.load(fh)


def load_recordings() -> dict[str, Recording]:
    """Every recording of the package's compact CWRU copy, in the index's order.

    Reads only ``equivtest_thesis/data`` (via :mod:`importlib.resources`), never ``../shared``.
    """
    index = load_index()
    with resources.files(DATA_PACKAGE).joinpath(NPZ_NAME).open("rb") as fh:
        with np.load(fh, allow_pickle=False) as npz:
            keys = [str(k) for k in npz["_keys"]]
            scale, offset = npz["_scale"], npz["_offset"]
            codes = {key: npz[key] for key in keys}
    row_of = {key: i for i, key in enumerate(keys)}
    recordings: dict[str, Recording] = {}
    for entry in index["recordings"]:
        key = entry["key"]
        if key not in row_of:
            raise VibrationDataError(
                f"recording {key!r} is in {INDEX_NAME} but not in {NPZ_NAME}; "
                "rebuild both with thesis/tools/make_cwru_subset.py"
            )
        i = row_of[key]
        signal = (offset[i] + scale[i] * codes[key].astype(np.float64)).astype(np.float32)
        if signal.shape != (entry["length_kept"], 2):
            raise VibrationDataError(
                f"recording {key!r} has shape {signal.shape}, the index says ({entry['length_kept']}, 2); "
                "rebuild the copy with thesis/tools/make_cwru_subset.py"
            )
        recordings[key] = Recording(
            key=key,
            fault=entry["fault"],
            diameter_mils=int(entry["diameter_mils"]),
            load_hp=int(entry["load_hp"]),
            outer_race_position=int(entry["outer_race_position"]),
            rpm=entry["rpm"],
            original_length=int(entry["original_length"]),
            start_offset=int(entry["start_offset"]),
            signal=signal,
        )
    return recordings


def segment_bounds(length: int, window: int, fractions: tuple[float, float, float]) -> dict[str, tuple[int, int]]:
    """Disjoint time segments of a recording: train, gap of one window, val, gap, test."""
    cut1 = int(math.floor(fractions[0] * length))
    cut2 = int(math.floor((fractions[0] + fractions[1]) * length))
    return {"train": (0, cut1), "val": (cut1 + window, cut2), "test": (cut2 + window, length)}


def window_starts(segment: tuple[int, int], window: int) -> np.ndarray:
    """Starts of the non-overlapping windows that fit inside ``segment``."""
    start, end = segment
    count = max(0, (end - start) // window)
    return start + window * np.arange(count, dtype=np.int64)


def _check_arguments(window, fractions, task, noise_snr_db) -> tuple[float, float, float]:
    if task not in TASKS:
        raise VibrationDataError(f"task must be one of {TASKS}, got {task!r}")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise VibrationDataError(f"window must be an integer >= 2 (time steps), got {window!r}")
    try:
        fractions = tuple(float(f) for f in fractions)
    except TypeError:
        raise VibrationDataError(f"fractions must be three numbers (train, val, test), got {fractions!r}") from None
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise VibrationDataError(
            f"fractions must be three positive numbers (train, val, test) summing to 1, got {fractions!r}"
        )
    if noise_snr_db is not None and not math.isfinite(float(noise_snr_db)):
        raise VibrationDataError(f"noise_snr_db must be a finite number of dB or None, got {noise_snr_db!r}")
    return fractions


def _check_finite(rec: Recording) -> None:
    bad = ~np.isfinite(rec.signal)
    if bad.any():
        t, c = np.argwhere(bad)[0]
        raise VibrationDataError(
            f"recording {rec.key!r} ({rec.fault}, {rec.diameter_mils} mil, {rec.load_hp} hp) has "
            f"{int(bad.sum())} NaN/inf value(s), the first at time step {int(t)} of the "
            f"{CHANNELS[c]} channel; windows from it would be NaN. Rebuild the package's copy "
            "with thesis/tools/make_cwru_subset.py (it leaves out recordings with a missing channel) "
            "or drop this recording"
        )


def _interleave(lists: list[np.ndarray]) -> list[tuple[int, int]]:
    """(list index, item) round-robin over ``lists``: a0, b0, c0, a1, b1, ..."""
    out = []
    for k in range(max((len(items) for items in lists), default=0)):
        out.extend((i, int(items[k])) for i, items in enumerate(lists) if k < len(items))
    return out


def make_splits(
    seed: int = 0,
    window: int = 100,
    fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
    task: str = "binary",
    noise_snr_db: float | None = None,
    noise_reference: str = "window",
) -> VibrationSplits:
    """Train, validation and test windows of the CWRU copy, balanced and leak-free.

    ``noise_snr_db``: if given, add white Gaussian sensor noise to every window before
    normalisation, per channel, at this signal-to-noise ratio, to make the task harder.
    ``noise_reference`` says what the signal power is:

    * ``"window"``: each window's own power (mean square over the window and channel).
      The noise scales with the signal, so it hides waveform detail but keeps every
      window's loudness ratio to the others: a detector on RMS is hardly affected.
    * ``"normal"``: the mean power of the normal training windows (per channel), i.e. a
      fixed noise floor in g, the same for every window of every split, like a sensor's
      own noise; loud fault windows keep a high SNR, quiet ones drown.

    The noise is drawn from ``seed`` like everything else.
    """
    if noise_reference not in NOISE_REFERENCES:
        raise VibrationDataError(f"noise_reference must be one of {NOISE_REFERENCES}, got {noise_reference!r}")
    fractions = _check_arguments(window, fractions, task, noise_snr_db)
    recordings = load_recordings()
    for rec in recordings.values():
        _check_finite(rec)
    segments = {key: segment_bounds(len(rec.signal), window, fractions) for key, rec in recordings.items()}
    for key, bounds in segments.items():
        for name, segment in bounds.items():
            if len(window_starts(segment, window)) == 0:
                raise VibrationDataError(
                    f"the {name} segment {segment} of recording {key!r} holds no window of {window} steps; "
                    "use a smaller window or larger fractions"
                )

    normal = [rec for rec in recordings.values() if rec.fault == "normal"]
    if not normal:
        raise VibrationDataError(f"{NPZ_NAME} holds no normal recording; rebuild it with thesis/tools/make_cwru_subset.py")
    if task == "binary":
        groups = [(1, [rec for rec in recordings.values() if rec.fault in FAULT_TYPES])]
    else:
        groups = [(i + 1, [rec for rec in recordings.values() if rec.fault == f]) for i, f in enumerate(FAULT_TYPES)]

    seeds = np.random.SeedSequence(seed).spawn(len(SPLITS))
    raw: dict[str, tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]] = {}
    floor_power = None  # noise_reference="normal": set from the training split (the first)
    for split_name, split_seed in zip(SPLITS, seeds):
        rng = np.random.default_rng(split_seed)
        chosen: list[tuple[Recording, int, int]] = []  # (recording, start, label)

        normal_windows = [(rec, int(s)) for rec in normal for s in window_starts(segments[rec.key][split_name], window)]
        # cells per group: (fault, diameter, load) -> recordings (e.g. outer-race positions)
        group_cells = []
        for label, recs in groups:
            cells: dict[tuple, list[Recording]] = {}
            for rec in sorted(recs, key=lambda r: (r.fault, r.diameter_mils, r.load_hp, r.outer_race_position, r.key)):
                cells.setdefault((rec.fault, rec.diameter_mils, rec.load_hp), []).append(rec)
            if not cells:
                raise VibrationDataError(f"no recordings for class {label} of task {task!r}; rebuild the copy")
            capacity = min(
                sum(len(window_starts(segments[r.key][split_name], window)) for r in cell) for cell in cells.values()
            )
            group_cells.append((label, cells, capacity))
        # as many windows per class as normal has, unless some class cannot give that many evenly
        per_class = min([len(normal_windows)] + [capacity * len(cells) for _, cells, capacity in group_cells])
        picks = np.sort(rng.choice(len(normal_windows), size=per_class, replace=False))
        chosen.extend((normal_windows[i][0], normal_windows[i][1], 0) for i in picks)

        for label, cells, _ in group_cells:
            cell_keys = list(cells)
            base, extra = divmod(per_class, len(cell_keys))
            counts = np.full(len(cell_keys), base)
            counts[rng.choice(len(cell_keys), size=extra, replace=False)] += 1
            for cell_key, count in zip(cell_keys, counts):
                recs = [cells[cell_key][i] for i in rng.permutation(len(cells[cell_key]))]
                starts = [rng.permutation(window_starts(segments[r.key][split_name], window)) for r in recs]
                for i, start in _interleave(starts)[:count]:
                    chosen.append((recs[i], start, label))

        order = rng.permutation(len(chosen))
        chosen = [chosen[i] for i in order]
        x = np.stack([rec.signal[s : s + window] for rec, s, _ in chosen]).astype(np.float64)
        y = np.array([label for _, _, label in chosen], dtype=np.int64)
        meta = {
            "key": np.array([rec.key for rec, _, _ in chosen]),
            "fault": np.array([rec.fault for rec, _, _ in chosen]),
            "diameter_mils": np.array([rec.diameter_mils for rec, _, _ in chosen], dtype=np.int64),
            "load_hp": np.array([rec.load_hp for rec, _, _ in chosen], dtype=np.int64),
            "outer_race_position": np.array([rec.outer_race_position for rec, _, _ in chosen], dtype=np.int64),
            "rpm": np.array([np.nan if rec.rpm is None else rec.rpm for rec, _, _ in chosen], dtype=np.float64),
            "start": np.array([s for _, s, _ in chosen], dtype=np.int64),
        }
        if noise_snr_db is not None:
            if noise_reference == "window":
                power = np.mean(x**2, axis=1, keepdims=True)  # (n, 1, channels): per window and channel
            else:
                if floor_power is None:
                    floor_power = np.mean(x[y == 0] ** 2, axis=(0, 1))  # (channels,), training normal windows
                power = floor_power
            sigma = np.sqrt(power / 10.0 ** (float(noise_snr_db) / 10.0))
            x = x + sigma * rng.standard_normal(x.shape)
        raw[split_name] = (x, y, meta)

    train_x = raw["train"][0]
    mean = train_x.mean(axis=(0, 1))
    std = train_x.std(axis=(0, 1))
    splits = {
        name: Split(((x - mean) / std).astype(np.float32), y, meta) for name, (x, y, meta) in raw.items()
    }
    return VibrationSplits(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        mean=mean,
        std=std,
        task=task,
        classes=CLASS_NAMES[task],
        segments=segments,
        seed=seed,
        window=int(window),
        noise_snr_db=None if noise_snr_db is None else float(noise_snr_db),
        noise_reference=noise_reference,
    )
