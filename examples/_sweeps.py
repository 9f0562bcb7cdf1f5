"""What the worked sweep examples share: run a sweep with stage timings, print its table with
the figures of every layer, and write the run folder through the sweep's normal route
(``equivtest.record.write_sweep_run`` for ``record.json``, ``equivtest.report.html.write_html``
for ``report.html``, as ``equivtest sweep`` does), with the example's own output checks beside
it in ``checks.json``.

Nothing here holds a figure: every number printed or written comes from the run.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np


def one_thread() -> None:
    """One torch thread (the examples run on a shared 2-core machine and are deterministic)."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)


def run_sweep(pair, inputs, layers_a=None, layers_b=None, **options):
    """``equivtest.sweep.sweep`` with a one-line progress report on stderr; (result, timings in s)."""
    from equivtest.sweep import sweep

    start = time.perf_counter()
    marks: dict = {}

    def progress(stage, done, total):
        marks.setdefault(stage, [time.perf_counter(), None])[1] = time.perf_counter()
        print(f"\r  {stage}: {done}/{total}  {time.perf_counter() - start:7.1f}s   ", end="", file=sys.stderr, flush=True)

    result = sweep(pair, inputs, layers_a, layers_b, progress=progress, **options)
    print(file=sys.stderr)
    timings, previous = {}, start
    for stage in ("capture a", "capture b", "fit"):
        if stage in marks:
            timings[f"{stage.replace(' ', '_')}_s"] = marks[stage][1] - previous
            previous = marks[stage][1]
    timings["total_s"] = time.perf_counter() - start
    return result, timings


def _fmt(value, digits=3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}g}"


def cell_rows(result) -> list[dict]:
    """Per layer of A, its match (the diagonal cell, or the row's best cell): the verdict and the
    figures of each direction (rung reached, held-out rel. error, stitched agreement, null ratio)."""
    out = []
    for cell in result.matches():
        row = {"layer_a": cell.layer_a, "layer_b": cell.layer_b, "kind": cell.kind, "up_to": cell.up_to,
               "verdict": cell.text, "cka": cell.cka}
        for d in cell.directions:
            row[d.direction] = {"status": d.status, "rung": d.rung, "rel_error": d.rel_error,
                                "stitched": d.stitched, "null_ratio": d.null_ratio}
        out.append(row)
    return out


def print_cells(result) -> None:
    """The sweep's answer per layer, both directions apart (the report table shows the worse of the two)."""
    head = (f"{'layer A':<24} {'layer B':<24} {'verdict':<16} {'dir':<5} {'rung':<12} {'rel.err':>9} "
            f"{'stitched':>9} {'null':>9} {'CKA':>7}")
    print(head)
    print("-" * len(head))
    for row in cell_rows(result):
        verdict = row["up_to"] or row["kind"]
        for k, direction in enumerate(("a->b", "b->a")):
            d = row[direction]
            rung = d["rung"] if d["status"] == "passed" else f"({d['status']})"
            print(f"{row['layer_a'] if k == 0 else '':<24} {row['layer_b'] if k == 0 else '':<24} "
                  f"{verdict if k == 0 else '':<16} {direction:<5} {rung:<12} {_fmt(d['rel_error']):>9} "
                  f"{_fmt(d['stitched'], 4):>9} {_fmt(d['null_ratio']):>9} "
                  f"{_fmt(row['cka'], 4) if k == 0 else '':>7}")
    first = result.first_failure
    if first is None:
        print(f"first failing layer (up_to={result.up_to}): none; every layer is equivalent up to {result.up_to}")
    else:
        print(f"first failing layer (up_to={result.up_to}): {first['layer_a']} ({first['by']})")


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def write_run(pair, result, timings: dict, report_dir: Path, checks: dict, options: dict) -> Path:
    """The run folder through the sweep's normal route, plus ``checks.json`` (the example's output checks)."""
    from equivtest.record import RecordError, write_sweep_run
    from equivtest.report.html import write_html
    from equivtest.report.sweep import sweep_table

    record = write_sweep_run(pair, result, report_dir, tables=[sweep_table(result.to_dict())], timings=timings,
                             options=options)
    folder = record.parent
    try:
        html = write_html(folder)
        print(f"report: {html}")
    except RecordError as exc:  # a report module that cannot draw sweeps yet
        print(f"no HTML report: {exc}")
    (folder / "checks.json").write_text(json.dumps(_plain(checks), indent=2))
    print(f"record: {record}")
    return record


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def consistency(result, output_equal: bool) -> str:
    """Does the sweep's story agree with the outputs? The last layer's verdict against the output check.

    ``output_equal``: whether the modified network's outputs are equivalent to the original's
    (every answer the same and the output error within the identity rung's threshold). The
    sweep's last layer (the one nearest the output) should then be equivalent up to its
    ``up_to``; where the outputs differ, some layer must fail."""
    last = result.matches()[-1]
    reaches = last.reaches(result.up_to, result.rungs)
    if output_equal and reaches:
        return "agrees: the outputs are equivalent and so is the last layer"
    if not output_equal and result.first_failure is not None:
        return (f"agrees: the outputs differ and the sweep names a first failing layer "
                f"({result.first_failure['layer_a']})")
    if output_equal:
        return f"disagrees: the outputs are equivalent but the last layer is not equivalent up to {result.up_to}"
    return f"disagrees: the outputs differ but every layer is equivalent up to {result.up_to}"
