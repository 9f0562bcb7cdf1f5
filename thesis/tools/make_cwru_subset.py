"""Build the compact CWRU copy the vibration suite ships (run once, by hand).

    python thesis/tools/make_cwru_subset.py [--source ../shared/data/cwru] [--fault-steps 24000]

This is the only code in the repository that reads the shared data folder; the package
never imports it and never reads ``../shared`` at run time (a user's clone has none).
It writes, into ``thesis/equivtest_thesis/data/``:

``cwru_12k_subset.npz``
    For every recording kept, the first ``--fault-steps`` time steps of a fault
    recording (24,000 = 2.0 s at 12 kHz) and the whole normal recording (243,938
    steps, 20.3 s), both accelerometer channels (drive end, fan end). The values sit
    on each channel's ADC grid (value = offset + scale * integer code), so they are
    stored losslessly as int16 codes with a float64 ``scale`` and ``offset`` per
    recording and channel (members ``_keys``, ``_scale``, ``_offset``); the script
    checks that decoding gives back the source's float32 values to within
    ``MAX_ABS_ERROR_G`` g (float32 rounding of the source, not the ADC step).
``cwru_index.json``
    Source, licence, storage format and, per recording, its key, fault type,
    diameter, load, outer-race position, rpm, original length, and the start offset
    and length kept; also the recordings left out and why.

Left out: the eight 28 mil recordings (f3001-f3008) have no fan-end channel (NaN in
every sample), and the suite's samples have both channels.

Why 24,000 steps per fault recording: the 4-class option balances normal, ball, inner
and outer race, so each of the 12 (diameter, load) cells of the ball and the inner-race
class, one recording each, must supply 1/12 of the normal windows of every split
(1,463 train, 486 validation, 486 test windows of 100 steps): 122, 41 and 41. With the
default fractions 0.6/0.2/0.2 and a one-window gap between segments, 24,000 steps give
144, 47 and 47.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "cwru"
OUT_DIR = REPO / "thesis" / "equivtest_thesis" / "data"
NPZ_NAME = "cwru_12k_subset.npz"
JSON_NAME = "cwru_index.json"
SAMPLING_RATE_HZ = 12_000
MAX_ABS_ERROR_G = 1e-6

SOURCE_TEXT = (
    "Case Western Reserve University Bearing Data Center, 12 kHz drive-end bearing fault "
    "experiments and the normal baseline"
)
LICENCE_TEXT = (
    "CWRU Bearing Data Center, published for public research use; cite the Bearing Data "
    "Center and, for the benchmark protocol, Smith and Randall (2015), MSSP 64-65"
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_index(path: Path) -> list[dict]:
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            rpm = float(row["rpm"]) if row["rpm"] not in ("", "nan") else float("nan")
            rows.append(
                {
                    "key": row["key"],
                    "fault": row["fault"],
                    "diameter_mils": int(row["diameter_mils"]),
                    "load_hp": int(row["load_hp"]),
                    "outer_race_position": int(row["outer_race_position"]),
                    "rpm": None if math.isnan(rpm) else rpm,
                    "original_length": int(row["n_samples"]),
                }
            )
    return rows


def fit_grid(x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Scale, offset and int16 codes with x ~= offset + scale * code (x on an ADC grid)."""
    x = x.astype(np.float64)
    steps = np.diff(np.unique(x))
    scale = float(np.median(steps))
    offset = float(x[0])
    for _ in range(3):  # refine the step by least squares on the integer codes
        codes = np.round((x - offset) / scale)
        design = np.stack([codes, np.ones_like(codes)], axis=1)
        (scale, offset), *_ = np.linalg.lstsq(design, x, rcond=None)
    codes = np.round((x - offset) / scale)
    centre = np.round((codes.max() + codes.min()) / 2)  # centre the codes in int16's range
    codes -= centre
    offset += centre * scale
    if codes.min() < -32768 or codes.max() > 32767:
        raise SystemExit(f"codes span {codes.min()}..{codes.max()}: does not fit int16")
    return float(scale), float(offset), codes.astype(np.int16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--fault-steps", type=int, default=24_000)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()

    npz_path = args.source / "cwru_12k_drive_end.npz"
    csv_path = args.source / "index.csv"
    rows = read_index(csv_path)
    source = np.load(npz_path)

    arrays: dict[str, np.ndarray] = {}
    keys, scales, offsets, kept, excluded = [], [], [], [], []
    worst = 0.0
    for row in rows:
        signal = source[row["key"]]
        assert signal.shape == (row["original_length"], 2), (row["key"], signal.shape)
        nan_channels = [name for c, name in enumerate(("drive_end", "fan_end")) if np.isnan(signal[:, c]).all()]
        if nan_channels:
            excluded.append(
                {**row, "reason": f"{' and '.join(nan_channels)} channel is NaN in every sample"}
            )
            continue
        length = signal.shape[0] if row["fault"] == "normal" else min(args.fault_steps, signal.shape[0])
        start = 0
        stretch = signal[start : start + length]
        if not np.isfinite(stretch).all():
            raise SystemExit(f"{row['key']}: non-finite values in the kept stretch")
        codes = np.empty(stretch.shape, dtype=np.int16)
        scale_rc, offset_rc = [], []
        for c in range(2):
            s, o, codes[:, c] = fit_grid(stretch[:, c])
            decoded = (o + s * codes[:, c].astype(np.float64)).astype(np.float32)
            err = float(np.abs(decoded.astype(np.float64) - stretch[:, c].astype(np.float64)).max())
            if err > MAX_ABS_ERROR_G:
                raise SystemExit(f"{row['key']} channel {c}: decoding error {err:.3g} g > {MAX_ABS_ERROR_G} g")
            worst = max(worst, err)
            scale_rc.append(s)
            offset_rc.append(o)
        arrays[row["key"]] = codes
        keys.append(row["key"])
        scales.append(scale_rc)
        offsets.append(offset_rc)
        kept.append({**row, "start_offset": start, "length_kept": int(length)})

    arrays["_keys"] = np.array(keys)
    arrays["_scale"] = np.array(scales, dtype=np.float64)
    arrays["_offset"] = np.array(offsets, dtype=np.float64)
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / NPZ_NAME, **arrays)

    index = {
        "source": SOURCE_TEXT,
        "licence": LICENCE_TEXT,
        "built_by": "thesis/tools/make_cwru_subset.py",
        "source_files_sha256": {
            "cwru_12k_drive_end.npz": sha256(npz_path),
            "index.csv": sha256(csv_path),
        },
        "sampling_rate_hz": SAMPLING_RATE_HZ,
        "channels": ["drive_end", "fan_end"],
        "units": "g",
        "storage": (
            "one int16 array (length_kept, 2) of ADC codes per recording key; "
            "value = _offset[i, c] + _scale[i, c] * code, with i the key's row in _keys; "
            f"decodes to the source float32 values within {worst:.2g} g"
        ),
        "fault_codes": {"normal": "normal", "B": "ball", "IR": "inner race", "OR": "outer race"},
        "outer_race_position_note": "o'clock position of an outer-race fault; 0 for other recordings",
        "recordings": kept,
        "excluded": excluded,
    }
    with open(args.out / JSON_NAME, "w") as fh:
        json.dump(index, fh, indent=1)
        fh.write("\n")

    npz_size = (args.out / NPZ_NAME).stat().st_size
    json_size = (args.out / JSON_NAME).stat().st_size
    print(f"kept {len(kept)} recordings, left out {len(excluded)}; worst decoding error {worst:.3g} g")
    print(f"{NPZ_NAME}: {npz_size / 1e6:.2f} MB, {JSON_NAME}: {json_size / 1e3:.1f} kB")


if __name__ == "__main__":
    main()
