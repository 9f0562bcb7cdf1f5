"""Rich tables of criteria, shared by the CLI and the pytest summary."""

from __future__ import annotations

from typing import Iterable

from rich.console import Console
from rich.table import Table

from ..criteria import CRITERIA, Criterion, EquivalenceResult


def _status(c: Criterion) -> str:
    return {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[dim]info[/]"}[c.passed]


def _order(c: Criterion) -> int:
    return {False: 0, True: 1, None: 2}[c.passed]


def criteria_table(results: Iterable[EquivalenceResult], title: str = "equivtest") -> Table:
    """One row per (pair, criterion, direction); failures first."""
    table = Table(title=title, show_lines=False)
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
        table.add_row(pair, c.name, c.direction, f"{c.value:.4g}", threshold, _status(c), c.detail)
    return table


def print_results(results: Iterable[EquivalenceResult], console: Console | None = None, title: str = "equivtest") -> None:
    (console or Console()).print(criteria_table(list(results), title))


def legend() -> str:
    return "; ".join(f"{name}: {desc}" for name, (_, desc) in CRITERIA.items())
