"""The arrays an HTML report plots, saved beside a run's record as ``plots.npz``.

Reports are rendered from files alone (no networks needed), so the run keeps a
bounded subset of what the fit and the criteria saw.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from .._io import NpzRefused, atomic_write_bytes, read_npz

MAX_POINTS = 2000
NEIGHBOURHOOD_SAMPLES, NEIGHBOURHOOD_POINTS = 12, 256


def _subsample(n: int, limit: int) -> np.ndarray:
    return np.arange(n) if n <= limit else np.linspace(0, n - 1, limit).astype(int)


def plot_arrays(fitted, result=None) -> dict[str, np.ndarray]:
    """The fit's arrays, and those of ``result``'s evaluation when it has them."""
    t = fitted.transformation
    n = len(fitted.activations["a"][0])  # rows: samples x slices for sliced sequence layers
    rows = _subsample(n, MAX_POINTS)
    nb_rows = _subsample(n, NEIGHBOURHOOD_SAMPLES)
    samples = fitted.samples
    inputs = samples.samples.reshape(samples.n_samples, -1) if samples is not None else np.zeros((0, 1))
    out = {
        # plotted against the input only where each row is one 1-d input
        "sample_inputs": inputs[rows] if len(inputs) == n else rows[:, None].astype(float) * np.ones((1, 2)),
        "eigenvalues_a": t.side_a_.eigenvalues,
        "eigenvalues_b": t.side_b_.eigenvalues,
        "neighbourhood_inputs": (
            samples.neighbourhoods[nb_rows, :NEIGHBOURHOOD_POINTS].reshape(
                len(nb_rows), -1, int(np.prod(samples.samples.shape[1:]))
            )
            if len(inputs) == n
            else np.zeros((len(nb_rows), 0, 2))
        ),
    }
    for side, other in (("a", "b"), ("b", "a")):
        samples, neighbourhoods = fitted.activations[side]
        fit = t.side_a_ if side == "a" else t.side_b_
        out[f"samples_{side}"] = samples[rows]
        out[f"neighbourhoods_{side}"] = neighbourhoods[nb_rows, :NEIGHBOURHOOD_POINTS]
        out[f"coordinates_{side}"] = fit.coordinates[rows]
        out[f"aligned_{side}_to_{other}"] = t.embed(samples[rows], side) @ (t.alignment_ab_ if side == "a" else t.alignment_ba_)
    arrays = getattr(result, "arrays", None)
    if arrays is not None:
        m_rows = len(arrays.activations["a"])
        act_rows = _subsample(m_rows, MAX_POINTS)
        numeric = arrays.inputs is not None and not isinstance(arrays.outputs["a"], tuple)
        if numeric:
            m = len(arrays.inputs)
            test_rows = _subsample(m, MAX_POINTS)
            out["test_inputs"] = np.asarray(arrays.inputs, dtype=np.float64).reshape(m, -1)[test_rows]
        if not numeric or m_rows != m:  # sliced sequences, text or audio: the activation error is plotted per row
            out["test_rows"] = act_rows[:, None].astype(float) * np.ones((1, 2))
        for side in ("a", "b"):
            out[f"test_activations_{side}"] = arrays.activations[side][act_rows] if len(arrays.activations[side]) == m_rows \
                else arrays.activations[side][_subsample(len(arrays.activations[side]), MAX_POINTS)]
            if numeric:
                out[f"test_outputs_{side}"] = np.asarray(arrays.outputs[side]).reshape(m, -1)[test_rows]
        for direction, values in arrays.predictions.items():
            out[f"predicted_{direction.replace('->', '_to_')}"] = values[_subsample(len(values), MAX_POINTS)]
        if numeric:
            for direction, values in arrays.stitched.items():
                out[f"stitched_{direction.replace('->', '_to_')}"] = np.asarray(values).reshape(m, -1)[test_rows]
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def save_plot_arrays(fitted, path: Path, result=None) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **plot_arrays(fitted, result))
    return atomic_write_bytes(path, buffer.getvalue())


def _allowed(name: str):
    """Every plot array is float64 and named like the keys of :func:`plot_arrays`."""
    return np.float64 if re.fullmatch(r"[a-z_]{1,64}", name) else None


def load_plot_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of ``plots.npz``, read within the bounds of :func:`equivtest._io.read_npz`."""
    from ..record import RecordError

    try:
        with open(path, "rb") as handle:
            return read_npz(handle, _allowed)
    except (OSError, NpzRefused) as exc:
        raise RecordError(f"{path} is not a readable plot file ({exc}); rerun the suite for a new run folder") from None
