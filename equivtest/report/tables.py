"""Tables a suite adds to its criteria: the thesis's result tables, in one format for
the terminal, the JSON record and the HTML report.

Cells are numbers, strings or ``None`` (shown as a dash); numbers keep full precision in
the record and are rounded only for display.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from numbers import Number

from rich.markup import escape
from rich.table import Table

from ..errors import EquivtestError


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Number):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if value == int(value) and abs(value) < 1e9:
            return str(int(value))
        return f"{value:.{digits}g}" if abs(value) < 1e-3 or abs(value) >= 1e5 else f"{value:.{digits}f}"
    return str(value)


@dataclass
class ResultTable:
    """A titled table: ``columns`` names, ``rows`` of cells, ``notes`` printed beneath."""

    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    notes: str = ""

    def add_row(self, *cells) -> None:
        if len(cells) != len(self.columns):
            raise EquivtestError(f"table {self.title!r} has {len(self.columns)} columns, got a row of {len(cells)}")
        self.rows.append([c.item() if hasattr(c, "item") else c for c in cells])

    def to_dict(self) -> dict:
        return {"title": self.title, "columns": list(self.columns), "rows": [list(r) for r in self.rows], "notes": self.notes}

    @classmethod
    def from_dict(cls, data: dict) -> "ResultTable":
        return cls(data["title"], list(data["columns"]), [list(r) for r in data.get("rows", [])], data.get("notes", ""))

    def to_rich(self) -> Table:
        # every text is data, never rich markup: `[v2]` in a name is shown, not parsed
        table = Table(title=escape(self.title), caption=escape(self.notes) or None, caption_justify="left")
        for i, col in enumerate(self.columns):
            numeric = any(isinstance(r[i], Number) and not isinstance(r[i], bool) for r in self.rows)
            # a table wider than the terminal wraps its headers and texts (at spaces, else folded), never a number
            widest = max((len(_cell(r[i])) for r in self.rows), default=0) if numeric else None
            table.add_column(escape(col), justify="right" if numeric else "left", overflow="fold", min_width=widest)
        for row in self.rows:
            table.add_row(*(escape(_cell(c)) for c in row))
        return table

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in self.rows)
        notes = f"<p class='notes'>{html.escape(self.notes)}</p>" if self.notes else ""
        return f"<h3>{html.escape(self.title)}</h3><table><tr>{head}</tr>{body}</table>{notes}"
