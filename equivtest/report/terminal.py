"""Rich tables of criteria, shared by the CLI and the pytest summary."""

from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..criteria import CRITERIA, Criterion, EquivalenceResult


def _status(c: Criterion) -> str:
    return {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[dim]info[/]"}[c.passed]


def _order(c: Criterion) -> int:
    return {False: 0, True: 1, None: 2}[c.passed]


def criteria_table(results: Iterable[EquivalenceResult], title: str = "equivtest") -> Table:
    """One row per (pair, criterion, direction); failures first."""
    table = Table(title=escape(title), show_lines=False)
    columns = (
        ("pair", {"no_wrap": True}),
        ("criterion", {"no_wrap": True}),
        ("direction", {"no_wrap": True}),
        ("value", {"justify": "right", "no_wrap": True, "min_width": 10}),
        ("threshold", {"justify": "right", "no_wrap": True, "min_width": 10}),
        ("status", {"min_width": 6}),
        ("detail", {"overflow": "fold"}),
    )
    for col, kw in columns:
        table.add_column(col, **kw)
    rows = [(r.pair, c) for r in results for c in r.criteria]
    rows.sort(key=lambda rc: (_order(rc[1]), rc[0]))
    for pair, c in rows:
        relation = "≥" if c.higher_is_better else "≤"
        threshold = "—" if c.threshold is None else f"{relation} {c.threshold:.3g}"
        # names are the user's: escaped, so that rich shows `mlp[v2]` and not markup
        table.add_row(escape(pair), escape(c.name), escape(c.direction), f"{c.value:.4g}", threshold, _status(c),
                      escape(c.detail))
    return table


def print_results(results: Iterable[EquivalenceResult], console: Console | None = None, title: str = "equivtest") -> None:
    (console or Console()).print(criteria_table(list(results), title))


def print_sweep(sweep: dict, console: Console | None = None) -> None:
    """A sweep's table (:func:`equivtest.report.sweep.sweep_table`): the diagonal layer by layer,
    or the best match of each layer of A, with the first failure marked."""
    from .sweep import sweep_table

    (console or Console()).print(sweep_table(sweep).to_rich())


def legend() -> str:
    return "; ".join(f"{name}: {desc}" for name, (_, desc) in CRITERIA.items())


def comparison_table(record_a: dict, record_b: dict, label_a: str = "A", label_b: str = "B") -> Table:
    """Criteria of two run records side by side, with the relative change from A to B."""
    table = Table(title=f"{escape(label_a)}  vs.  {escape(label_b)}")
    for col in ("criterion", "direction", "run A", "run B", "change", "better?"):
        table.add_column(col, justify="right" if col in ("run A", "run B", "change") else "left", no_wrap=True)
    crit_a = {(c["name"], c["direction"]): c for c in record_a["result"]["criteria"]}
    crit_b = {(c["name"], c["direction"]): c for c in record_b["result"]["criteria"]}
    for key in list(crit_a) + [k for k in crit_b if k not in crit_a]:
        a, b = crit_a.get(key), crit_b.get(key)
        cells = [escape(part) for part in key]
        if a is None or b is None:
            table.add_row(*cells, "—" if a is None else f"{a['value']:.4g}", "—" if b is None else f"{b['value']:.4g}",
                          "", "[yellow]only in one run[/]")
            continue
        change = (b["value"] - a["value"]) / abs(a["value"]) * 100 if a["value"] else float("inf")
        if b["value"] == a["value"]:
            verdict = "same"
        else:
            better = (b["value"] > a["value"]) == bool(a["higher_is_better"])
            verdict = "[green]better[/]" if better else "[red]worse[/]"
        table.add_row(*cells, f"{a['value']:.4g}", f"{b['value']:.4g}", f"{change:+.1f}%", verdict)
    return table
