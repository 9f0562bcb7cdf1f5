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


WORD = 16  # a text column is given room for words up to this long before it is folded


def _longest_word(text: str) -> int:
    return max(map(len, text.split()), default=0)


def _fit_widths(columns: list[str], texts: list[list[str]], numeric: list[bool], max_width: int | None) -> list:
    """Column widths (``None``: rich's own) that fit ``max_width``. A number column is as wide as
    its widest number (and its header's longest word). The text columns share what is left:
    first each gets its longest word (up to :data:`WORD`, so no word of a verdict is broken),
    then the rest goes to them in proportion to what they still lack; where even the words do
    not fit, each gets a share in proportion to its word."""
    natural = [max([len(col), *(len(row[i]) for row in texts)]) for i, col in enumerate(columns)]
    frame = 3 * len(columns) + 1  # a border and two spaces of padding per column, one border to close
    if max_width is None or sum(natural) + frame <= max_width:
        return [None] * len(columns)
    widths = [max([_longest_word(col), *(len(row[i]) for row in texts)]) if numeric[i] else None
              for i, col in enumerate(columns)]
    text = [i for i, w in enumerate(widths) if w is None]
    left = max_width - frame - sum(w for w in widths if w is not None)
    words = {i: max([_longest_word(columns[i]), *(min(WORD, _longest_word(row[i])) for row in texts)]) for i in text}
    if sum(words.values()) >= left:
        for i in text:
            widths[i] = max(1, left * words[i] // max(1, sum(words.values())))
        return widths
    lack = {i: natural[i] - words[i] for i in text}
    spare = left - sum(words.values())
    for i in text:
        widths[i] = words[i] + spare * lack[i] // max(1, sum(lack.values()))
    return widths


class FittedTable:
    """A :class:`ResultTable` as rich draws it: laid out for the width of the console printing it."""

    def __init__(self, table: "ResultTable"):
        self.table = table

    def __rich_console__(self, console, options):
        yield self.table.rich_table(options.max_width)


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

    def to_rich(self) -> "FittedTable":
        """A rich renderable that draws the table to the width of the console it is printed on."""
        return FittedTable(self)

    def rich_table(self, max_width: int | None = None) -> Table:
        """The rich :class:`~rich.table.Table`; given ``max_width`` (the console's), a table wider
        than that keeps every number whole and wraps its texts and headers to share the rest
        (a layer name is folded, not cut)."""
        texts = [[_cell(c) for c in row] for row in self.rows]
        numeric = [any(isinstance(r[i], Number) and not isinstance(r[i], bool) for r in self.rows)
                   for i in range(len(self.columns))]
        widths = _fit_widths(self.columns, texts, numeric, max_width)
        # every text is data, never rich markup: `[v2]` in a name is shown, not parsed
        table = Table(title=escape(self.title), caption=escape(self.notes) or None, caption_justify="left")
        for col, is_number, width in zip(self.columns, numeric, widths):
            table.add_column(escape(col), justify="right" if is_number else "left", overflow="fold", width=width)
        for row in texts:
            table.add_row(*map(escape, row))
        return table

    def to_html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in row) + "</tr>" for row in self.rows)
        notes = f"<p class='notes'>{html.escape(self.notes)}</p>" if self.notes else ""
        return f"<h3>{html.escape(self.title)}</h3><table><tr>{head}</tr>{body}</table>{notes}"
