"""A verdict in the run records: what the command line and the pytest plugin write of it.

:func:`verdict_info` is what a run record's ``result.info`` says of a verdict (its text,
kind, rung, and the whole :meth:`~equivtest.verdict.Verdict.to_dict` under ``ladder``);
the command line puts it beside a fitted transformation. A verdict made in a pytest test
may have no transformation beside it, so the plugin writes it a run folder of its own
(:func:`write_verdict_run`): ``record.json`` (schema ``equivtest.run``: the ladder's table
in ``tables``, a criterion per direction in ``result``, no ``transformation`` or ``plots``
artefact) and, if asked, ``report.html``. Both are built from a :func:`verdict_entry`, a
plain-data value, so a pytest-xdist worker can hand its verdicts to the controller as JSON.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


CRITERION = "ladder_rel_error"


def verdict_info(verdict) -> dict:
    """The fields a run record's ``result.info`` holds for ``verdict``."""
    return {"verdict": verdict.text, "verdict_kind": verdict.kind, "verdict_up_to": verdict.up_to,
            "ladder": verdict.to_dict()}


def verdict_entry(pair, verdict, title: str | None = None) -> dict:
    """Plain data (JSON) for a verdict on ``pair``: its name, the pair's description, the
    record's ``info`` (:func:`verdict_info`, the verdict's ``to_dict()`` under ``ladder``) and
    its table (:func:`equivtest.check.verdict_table`)."""
    from .check import verdict_table

    return {"name": pair.name, "pair": plain(pair.describe()), "info": plain(verdict_info(verdict)),
            "table": verdict_table(verdict, title).to_dict()}


def plain(value):
    """``value`` as JSON data: numpy scalars and arrays as numbers and lists, other objects as text."""
    from .record import _json_default

    return json.loads(json.dumps(value, default=_json_default))


CRITERIA = (("ladder_rel_error", "heldout_rel_error", "max_rel_error", False),
            ("ladder_null_ratio", "null_ratio", "min_null_ratio", True),
            ("ladder_stitched", "stitched", "min_stitched", True))


def verdict_criteria(verdict: dict) -> list:
    """Per direction, the criteria of the rung that reached it (or of the last rung that gave
    numbers): held-out relative error, null ratio and stitched score (where measured), each with
    that rung's threshold, or none where the direction is undecidable; the detail gives the
    direction's status and reason. A failed direction fails at least one of them."""
    from .criteria import Criterion

    found = []
    for d in verdict["directions"]:
        rows = [r for r in verdict["rows"] if r["direction"] == d["direction"] and _number(r["heldout_rel_error"])]
        row = next((r for r in rows if r["rung"] == d["rung"]), rows[-1] if rows else None)
        detail = f"{d['status']}" + (f" at {row['rung']}" if row else "") + f": {d['reason']}"
        if row is None:  # no rung could be fitted between these layers
            found.append(Criterion(CRITERION, d["direction"], float("nan"), None, False, detail))
            continue
        decided = row["decidable"] and d["status"] != "undecidable"
        limits = verdict["thresholds"][row["rung"]]
        for name, key, limit, higher in CRITERIA:
            if _number(row.get(key)):
                found.append(Criterion(name, d["direction"], float(row[key]), float(limits[limit]) if decided else None,
                                       higher, detail))
    return found


def _number(value) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def build_verdict_record(entry: dict) -> dict:
    """The run record (schema ``equivtest.run``) of a verdict entry."""
    from .criteria import EquivalenceResult
    from .record import library_versions, record_header

    result = EquivalenceResult(entry["name"], verdict_criteria(entry["info"]["ladder"]), entry["info"])
    return {
        **record_header(), "pair": entry["pair"], "sampler": None, "config": None, "fit": None,
        "versions": library_versions(), "result": result.to_dict(), "timings": {}, "artefacts": {},
        "tables": [entry["table"]],
    }


def write_verdict_run(entry: dict, root, *, html: bool = False) -> list[Path]:
    """Write ``root/<pair>-verdict-<time>-<id>/record.json`` (and ``report.html``); returns the paths."""
    from .record import new_run_dir, write_record

    folder = new_run_dir(root, f"{entry['name']}-verdict")
    written = [write_record(folder, build_verdict_record(entry))]
    if html:
        from .report.html import write_html

        written.append(write_html(folder))
    return written
