"""The JSON record of a run (schema ``equivtest.run``, version 1; fields in the README)."""

from __future__ import annotations

import json
import platform
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._io import atomic_write_bytes

SCHEMA = "equivtest.run"
SCHEMA_VERSION = 1


def library_versions() -> dict:
    import datafold
    import scipy
    import torch

    from . import __version__

    return {
        "equivtest": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "datafold": datafold.__version__,
    }


def build_record(fitted, result, *, suite: str | None = None, artefacts: dict | None = None,
                 tables=None) -> dict:
    t = fitted.transformation
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": suite,
        "pair": fitted.pair.describe(),
        "sampler": fitted.describe_data(),
        "config": asdict(fitted.config),
        "fit": {
            "n_samples": int(fitted.info.get("n_inputs", len(set(fitted.groups.tolist())))),
            "n_rows": int(len(fitted.groups)),
            "neighbourhood_size": int(fitted.activations["a"][1].shape[1]),
            "epsilon": {"a": t.side_a_.epsilon, "b": t.side_b_.epsilon},
            "eigenvalues": {"a": t.side_a_.eigenvalues.tolist(), "b": t.side_b_.eigenvalues.tolist()},
        },
        "versions": library_versions(),
        "result": result.to_dict(),
        "timings": {**fitted.timings, **({"evaluate_s": result.info["evaluate_s"]} if "evaluate_s" in result.info else {})},
        "artefacts": dict(artefacts or {}),
        "tables": [table.to_dict() for table in tables or ()],
    }


def new_run_dir(root: str | Path, name: str) -> Path:
    """A fresh folder ``root/name-YYYYmmdd-HHMMSS-xxxxxx``; unique even for parallel workers."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{name}-{stamp}-{uuid.uuid4().hex[:6]}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def write_run(fitted, result, root: str | Path, *, suite: str | None = None, save_transformation: bool = True,
              tables=None, name: str | None = None) -> Path:
    """Write ``record.json`` (and ``transformation.npz``) into a new run folder; returns the record path.

    ``tables`` (:class:`equivtest.report.tables.ResultTable`) are a suite's own result
    tables; ``name`` names the folder (default: the suite's, else the pair's)."""
    from .report.plotdata import save_plot_arrays

    folder = new_run_dir(root, name or suite or fitted.pair.name)
    artefacts = {}
    if save_transformation:
        fitted.transformation.save(folder / "transformation.npz")
        artefacts["transformation"] = "transformation.npz"
    save_plot_arrays(fitted, folder / "plots.npz", result)
    artefacts["plots"] = "plots.npz"
    record = build_record(fitted, result, suite=suite, artefacts=artefacts, tables=tables)
    return atomic_write_bytes(folder / "record.json", json.dumps(record, indent=2, default=_json_default).encode())


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def load_record(path: str | Path) -> dict:
    data = json.loads(Path(path).read_text())
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path} is not an equivtest run record (schema {data.get('schema')!r})")
    return data
