"""The arrays an HTML report plots, saved beside a run's record as ``plots.npz``.

Reports are rendered from files alone (no networks needed), so the run keeps a
bounded subset of what the fit and the criteria saw.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .._io import atomic_write_bytes

MAX_POINTS = 2000
NEIGHBOURHOOD_SAMPLES, NEIGHBOURHOOD_POINTS = 12, 256


def _subsample(n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).astype(int)


def plot_arrays(fitted) -> dict[str, np.ndarray]:
    t = fitted.transformation
    n = fitted.samples.n_samples
    rows = _subsample(n, MAX_POINTS)
    nb_rows = _subsample(n, NEIGHBOURHOOD_SAMPLES)
    out = {
        "sample_inputs": fitted.samples.samples.reshape(n, -1)[rows],
        "eigenvalues_a": t.side_a_.eigenvalues,
        "eigenvalues_b": t.side_b_.eigenvalues,
        "neighbourhood_inputs": fitted.samples.neighbourhoods[nb_rows, :NEIGHBOURHOOD_POINTS].reshape(
            len(nb_rows), -1, int(np.prod(fitted.samples.samples.shape[1:]))
        ),
    }
    for side, other in (("a", "b"), ("b", "a")):
        samples, neighbourhoods = fitted.activations[side]
        fit = t.side_a_ if side == "a" else t.side_b_
        out[f"samples_{side}"] = samples[rows]
        out[f"neighbourhoods_{side}"] = neighbourhoods[nb_rows, :NEIGHBOURHOOD_POINTS]
        out[f"coordinates_{side}"] = fit.coordinates[rows]
        out[f"aligned_{side}_to_{other}"] = t.embed(samples[rows], side) @ (t.alignment_ab_ if side == "a" else t.alignment_ba_)
    if getattr(fitted, "test_activations", None) is not None:
        m = len(fitted.test_inputs)
        test_rows = _subsample(m, MAX_POINTS)
        out["test_inputs"] = np.asarray(fitted.test_inputs).reshape(m, -1)[test_rows]
        for side in ("a", "b"):
            out[f"test_activations_{side}"] = fitted.test_activations[side][test_rows]
            out[f"test_outputs_{side}"] = fitted.test_outputs[side].reshape(m, -1)[test_rows]
        for direction, values in fitted.test_predictions.items():
            out[f"predicted_{direction.replace('->', '_to_')}"] = values[test_rows]
        for direction, values in fitted.test_stitched.items():
            out[f"stitched_{direction.replace('->', '_to_')}"] = values.reshape(m, -1)[test_rows]
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def save_plot_arrays(fitted, path: Path) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **plot_arrays(fitted))
    return atomic_write_bytes(path, buffer.getvalue())


def load_plot_arrays(path: Path) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
