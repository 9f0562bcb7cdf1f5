"""The JSON record of a run (schema ``equivtest.run``, version 1; fields in the README)."""

from __future__ import annotations

import json
import platform
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from numbers import Real
from pathlib import Path

import numpy as np

from ._io import atomic_write_bytes
from .errors import EquivtestError

SCHEMA = "equivtest.run"
SCHEMA_VERSION = 1


def library_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import scipy
    import torch

    try:  # read from its metadata: importing datafold costs a second and it may be absent
        datafold = version("datafold")
    except PackageNotFoundError:
        datafold = "not installed"

    from . import __version__

    return {
        "equivtest": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "datafold": datafold,
    }


def record_header(suite: str | None = None) -> dict:
    """The fields every run record starts with: its schema, when it was made, and the suite."""
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "suite": suite}


def write_record(folder: Path, record: dict) -> Path:
    """``folder/record.json``, written atomically; returns its path."""
    return atomic_write_bytes(folder / "record.json", json.dumps(record, indent=2, default=_json_default).encode())


def build_record(fitted, result, *, suite: str | None = None, artefacts: dict | None = None,
                 tables=None) -> dict:
    t = fitted.transformation
    return {
        **record_header(suite),
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
        "memory": memory_record(fitted, result),
        "artefacts": dict(artefacts or {}),
        "tables": [table.to_dict() for table in tables or ()],
    }


def memory_record(fitted, result) -> dict:
    """Peak memory of each stage of the fit and of the evaluation (bytes), the measure
    used, the budget and which rows went to disk (see docs/formats.md)."""
    fit = dict(getattr(fitted, "memory", {}) or {})
    evaluate = dict(result.info.get("memory", {}) or {})
    return {
        "measure": fit.get("measure", evaluate.get("measure")),
        "fit_peak_bytes": fit.get("peak_bytes", {}),
        "evaluate_peak_bytes": evaluate.get("peak_bytes", {}),
        "budget_bytes": fit.get("budget_bytes"),
        "rows_in_memory_bytes": fit.get("rows_in_memory_bytes"),
        "streamed": fit.get("streamed", []),
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
    return write_record(folder, build_record(fitted, result, suite=suite, artefacts=artefacts, tables=tables))


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


class RecordError(EquivtestError):
    """A run record or one of its artefacts is unreadable, malformed or points outside its run folder."""


_REWRITE = "rerun the suite (`equivtest run`, or pytest with --equivtest-report-dir) for a new record"


def _is_number(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check(condition: bool, path, what: str) -> None:
    if not condition:
        raise RecordError(f"{path} is not a valid run record: {what}; it was edited or damaged, {_REWRITE}")


def load_record(path: str | Path) -> dict:
    """Read and check ``record.json``: every field a report reads has the type it should,
    and every artefact path stays inside the run folder. Any fault is a :class:`RecordError`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path} cannot be read as a run record ({exc}); {_REWRITE}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise RecordError(f"{path} is not an equivtest run record (schema {schema!r})")
    _check(data.get("schema_version") == SCHEMA_VERSION, path,
           f"schema version {data.get('schema_version')!r}, this equivtest reads {SCHEMA_VERSION}")
    _check(isinstance(data.get("created"), str), path, "'created' is not a string")
    _check(data.get("suite") is None or isinstance(data.get("suite"), str), path, "'suite' is not a string")
    pair = data.get("pair")
    _check(isinstance(pair, dict) and isinstance(pair.get("name"), str), path, "'pair' has no name")
    names = pair.get("names", ["a", "b"])
    _check(isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names), path,
           "'pair.names' is not two strings")
    result = data.get("result")
    _check(isinstance(result, dict) and isinstance(result.get("passed"), bool)
           and isinstance(result.get("criteria"), list), path, "'result' lacks 'passed' or 'criteria'")
    for i, c in enumerate(result["criteria"]):
        where = f"criterion {i}"
        _check(isinstance(c, dict), path, f"{where} is not an object")
        for key in ("name", "direction"):
            _check(isinstance(c.get(key), str), path, f"{where} has a {key} that is not a string: {c.get(key)!r}")
        _check(_is_number(c.get("value")), path, f"{where} ({c['name']}) has a value that is not a number: {c.get('value')!r}")
        _check(c.get("threshold") is None or _is_number(c["threshold"]), path,
               f"{where} ({c['name']}) has a threshold that is not a number: {c.get('threshold')!r}")
        _check(isinstance(c.get("higher_is_better"), bool), path, f"{where} ({c['name']}) lacks higher_is_better")
        _check(c.get("passed") in (True, False, None), path, f"{where} ({c['name']}) has passed = {c.get('passed')!r}")
        _check(isinstance(c.get("detail", ""), str), path, f"{where} ({c['name']}) has a detail that is not a string")
    tables = data.get("tables", [])
    _check(isinstance(tables, list), path, "'tables' is not a list")
    for t in tables:
        _check(isinstance(t, dict) and isinstance(t.get("title"), str) and isinstance(t.get("notes", ""), str)
               and isinstance(t.get("columns"), list) and all(isinstance(c, str) for c in t["columns"])
               and isinstance(t.get("rows", []), list)
               and all(isinstance(r, list) and len(r) == len(t["columns"])
                       and all(v is None or isinstance(v, (str, Real)) for v in r) for r in t.get("rows", [])),
               path, f"table {t.get('title') if isinstance(t, dict) else t!r} is malformed")
    artefacts = data.get("artefacts", {})
    _check(isinstance(artefacts, dict), path, "'artefacts' is not an object")
    for key in artefacts:
        artefact_path(path.parent, data, key)
    return data


def artefact_path(run: str | Path, record: dict, key: str, default: str | None = None, *, must_exist: bool = False) -> Path:
    """The file a record's ``artefacts[key]`` names, resolved inside the run folder ``run``.

    An absolute path, or one that leads out of the folder (``..``, a symbolic link), is a
    :class:`RecordError`; so is a missing file when ``must_exist``."""
    value = record.get("artefacts", {}).get(key, default)
    if not isinstance(value, str) or not value:
        raise RecordError(f"artefact {key!r} of the run in {run} is {value!r}, not a file name; {_REWRITE}")
    root = Path(run).resolve()
    if Path(value).is_absolute():
        raise RecordError(
            f"artefact {key!r} of the run in {run} is the absolute path {value!r}; a record names its artefacts "
            f"relative to its run folder and only files inside it are read; {_REWRITE}"
        )
    target = (root / value).resolve()
    if not target.is_relative_to(root):
        raise RecordError(
            f"artefact {key!r} of the run in {run} points outside the run folder ({value!r}); only files inside "
            f"it are read; {_REWRITE}"
        )
    if must_exist and not target.is_file():
        raise RecordError(f"artefact {key!r} of the run in {run} ({value}) is missing; {_REWRITE}")
    return target


def build_sweep_record(pair, sweep, *, tables=None, timings: dict | None = None, options: dict | None = None) -> dict:
    """The run record of a sweep: the pair, the whole grid under ``"sweep"`` (``SweepResult.to_dict()``),
    and as ``"result"`` whether every layer is equivalent up to the sweep's ``up_to`` (no criteria)."""
    first = sweep.first_failure
    return {
        **record_header(),
        "pair": pair.describe(),
        "config": dict(options or {}),
        "versions": library_versions(),
        "result": {"pair": pair.name, "passed": first is None, "criteria": [],
                   "info": {"sweep": f"first failure at {first['layer_a']}" if first else
                            f"every layer equivalent up to {sweep.up_to}"}},
        "sweep": sweep.to_dict(),
        "timings": dict(timings or {}),
        "artefacts": {},
        "tables": [table.to_dict() for table in tables or ()],
    }


def write_sweep_run(pair, sweep, root: str | Path, *, tables=None, timings: dict | None = None,
                    options: dict | None = None, name: str | None = None) -> Path:
    """Write a sweep's ``record.json`` into a new run folder; returns the record's path."""
    folder = new_run_dir(root, name or f"{pair.name}-sweep")
    return write_record(folder, build_sweep_record(pair, sweep, tables=tables, timings=timings, options=options))
