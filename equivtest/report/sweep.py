"""The report of a layer-by-layer sweep: its table and its heatmap.

A sweep's result is the dict ``SweepResult.to_dict()`` that the run record keeps as
``record["sweep"]`` (fields in docs/formats.md, "The sweep"). Everything here reads that
dict alone, after :func:`validate_sweep` has checked it, so a record drawn later, on
another machine, gives the same table and figure.

- :func:`sweep_table`: the terminal's, the record's and the HTML page's table: one row per
  layer for a diagonal sweep, the best match of each layer of A for an all-pairs sweep.
- :func:`sweep_heatmap`: a matplotlib figure, layer of A (rows) x layer of B (columns);
  colour = held-out relative error of the worse of the two directions (log scale), a
  letter per cell for its rung, the first failure outlined.
"""

from __future__ import annotations

import math
import re
import textwrap
from numbers import Real

from ..errors import EquivtestError
from .tables import ResultTable

SCHEMA = 1
MODES = ("all", "diagonal")
KINDS = ("equivalent", "a_to_b", "b_to_a", "not_equivalent", "undecidable")
STATUSES = ("passed", "failed", "undecidable")
DIRECTIONS = ("a->b", "b->a")
DIRECTION_KEYS = ("status", "rung", "rel_error", "stitched", "null_ratio")
# one letter per rung of equivtest.maps.RUNGS; a rung of the user's own gets one in rung_letters
RUNG_LETTERS = {"identity": "I", "permutation": "P", "orthogonal": "O", "diagonal": "D", "affine": "A",
                "nonlinear": "N", "diffusion": "M"}
NOT_EQUIVALENT, UNDECIDABLE, ONLY_A_TO_B, ONLY_B_TO_A = "x", "?", "→", "←"
FIRST_FAILURE_MARK = "◀ first failure"

_FIX = ("it was edited, damaged or written by another equivtest version; rerun the sweep "
        "(`equivtest sweep FILE::PAIR`) for a new record")


class SweepSchemaError(EquivtestError):
    """A sweep dict (``record["sweep"]``) does not follow the sweep schema; the message names the key."""


# ----------------------------------------------------------------------------- validation


def _need(condition: bool, where: str, what: str) -> None:
    if not condition:
        raise SweepSchemaError(f"sweep{where} {what}; {_FIX}")


def _get(d: dict, key: str, where: str):
    _need(key in d, where, f"lacks the key {key!r}")
    return d[key]


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


NON_FINITE = ("inf", "-inf", "nan")  # how a sweep's to_dict (like a verdict's) writes non-finite figures


def _is_number_or_none(value) -> bool:
    return value is None or value in NON_FINITE or (isinstance(value, Real) and not isinstance(value, bool))


def _strings(value, where: str, what: str, *, unique: bool = True) -> list[str]:
    _need(isinstance(value, list) and len(value) > 0 and all(isinstance(v, str) for v in value), where,
          f"is {value!r}, not a non-empty list of {what}")
    if unique:
        twice = sorted({v for v in value if value.count(v) > 1})
        _need(not twice, where, f"names {twice} more than once")
    return value


def _rung_or_none(value, rungs: list[str], where: str) -> None:
    _need(value is None or value in rungs, where, f"is {value!r}, not null or a rung of the sweep's ladder {rungs}")


def _validate_direction(d, rungs: list[str], where: str) -> None:
    _need(isinstance(d, dict), where, f"is {type(d).__name__}, not an object")
    for key in DIRECTION_KEYS:
        _get(d, key, where)
    _need(d["status"] in STATUSES, f"{where}['status']", f"is {d['status']!r}, not one of {list(STATUSES)}")
    _rung_or_none(d["rung"], rungs, f"{where}['rung']")
    _need(d["status"] != "passed" or d["rung"] is not None, f"{where}['rung']", "is null although the direction passed")
    for key in ("rel_error", "stitched", "null_ratio"):
        _need(_is_number_or_none(d[key]), f"{where}[{key!r}]", f"is {d[key]!r}, not a number or null")


def _validate_cell(cell, sweep: dict, where: str) -> tuple[int, int]:
    _need(isinstance(cell, dict), where, f"is {type(cell).__name__}, not an object")
    i, j = _get(cell, "i", where), _get(cell, "j", where)
    for key, index, layers in (("i", i, "layers_a"), ("j", j, "layers_b")):
        _need(_is_int(index) and 0 <= index < len(sweep[layers]), f"{where}[{key!r}]",
              f"is {index!r}, not an index into {layers} (0 to {len(sweep[layers]) - 1})")
    for key, layers, index in (("layer_a", "layers_a", i), ("layer_b", "layers_b", j)):
        _need(_get(cell, key, where) == sweep[layers][index], f"{where}[{key!r}]",
              f"is {cell[key]!r}, but {layers}[{index}] is {sweep[layers][index]!r}")
    _need(sweep["mode"] != "diagonal" or i == j, where, f"is cell ({i}, {j}) of a diagonal sweep, where i == j")
    kind = _get(cell, "kind", where)
    _need(kind in KINDS, f"{where}['kind']", f"is {kind!r}, not one of {list(KINDS)}")
    _rung_or_none(_get(cell, "up_to", where), sweep["rungs"], f"{where}['up_to']")
    _need(kind != "equivalent" or cell["up_to"] is not None, f"{where}['up_to']", "is null for an equivalent cell")
    _need(isinstance(_get(cell, "text", where), str), f"{where}['text']", "is not a string")
    _need(_is_number_or_none(_get(cell, "cka", where)), f"{where}['cka']", f"is {cell['cka']!r}, not a number or null")
    directions = _get(cell, "directions", where)
    _need(isinstance(directions, dict), f"{where}['directions']", "is not an object")
    for direction in DIRECTIONS:
        _validate_direction(_get(directions, direction, f"{where}['directions']"), sweep["rungs"],
                            f"{where}['directions'][{direction!r}]")
    for one_way, direction in (("a_to_b", "a->b"), ("b_to_a", "b->a")):
        _need(kind != one_way or directions[direction]["status"] == "passed", f"{where}['kind']",
              f"is {one_way!r}, but its {direction} direction did not pass")
    return i, j


def _validate_first_failure(ff, sweep: dict) -> None:
    where = "['first_failure']"
    if ff is None:
        return
    _need(isinstance(ff, dict), where, f"is {type(ff).__name__}, not null or an object")
    for key in ("i", "j", "layer_a", "layer_b", "kind", "up_to", "rel_error", "by"):
        _get(ff, key, where)
    cell = next((c for c in sweep["cells"] if (c["i"], c["j"]) == (ff["i"], ff["j"])), None)
    _need(cell is not None, where, f"names cell ({ff['i']!r}, {ff['j']!r}), which is not among the cells")
    _need((ff["layer_a"], ff["layer_b"]) == (cell["layer_a"], cell["layer_b"]), where,
          f"names layers {ff['layer_a']!r} / {ff['layer_b']!r}, but its cell is {cell['layer_a']!r} / {cell['layer_b']!r}")
    _need(ff["kind"] in KINDS, f"{where}['kind']", f"is {ff['kind']!r}, not one of {list(KINDS)}")
    _rung_or_none(ff["up_to"], sweep["rungs"], f"{where}['up_to']")
    _need(_is_number_or_none(ff["rel_error"]), f"{where}['rel_error']", "is not a number or null")
    _need(isinstance(ff["by"], str), f"{where}['by']", "is not a string")


def validate_sweep(sweep) -> dict:
    """``sweep`` itself if it follows the sweep schema, else a :class:`SweepSchemaError`
    naming the first key that is missing or wrong (``sweep['cells'][3]['kind']``)."""
    _need(isinstance(sweep, dict), "", f"is {type(sweep).__name__}, not an object")
    for key in ("schema", "mode", "names", "layers_a", "layers_b", "rungs", "up_to", "first_failure", "cells"):
        _get(sweep, key, "")
    _need(sweep["schema"] == SCHEMA, "['schema']", f"is {sweep['schema']!r}; this equivtest draws sweeps of schema {SCHEMA}")
    _need(sweep["mode"] in MODES, "['mode']", f"is {sweep['mode']!r}, not one of {list(MODES)}")
    names = sweep["names"]
    _need(isinstance(names, list) and len(names) == 2 and all(isinstance(n, str) for n in names), "['names']",
          f"is {names!r}, not the two networks' labels")
    for key in ("layers_a", "layers_b"):
        _strings(sweep[key], f"[{key!r}]", "layer names")
    _strings(sweep["rungs"], "['rungs']", "rung names")
    _rung_or_none(sweep["up_to"], sweep["rungs"], "['up_to']")
    _need(isinstance(sweep["cells"], list), "['cells']", "is not a list")
    seen = set()
    for n, cell in enumerate(sweep["cells"]):
        ij = _validate_cell(cell, sweep, f"['cells'][{n}]")
        _need(ij not in seen, f"['cells'][{n}]", f"is cell {ij} a second time")
        seen.add(ij)
    _validate_first_failure(sweep["first_failure"], sweep)
    return sweep


# ----------------------------------------------------------------------------- reading a cell


def _number(value) -> float | None:
    """A figure as a float (``"inf"`` as infinity); ``None`` where it is missing or NaN."""
    value = None if value is None else float(value)
    return None if value is None or math.isnan(value) else value


def _finite(value) -> float | None:
    value = _number(value)
    return value if value is None or math.isfinite(value) else None


def rung_letters(rungs: list[str]) -> dict[str, str]:
    """A letter per rung of the sweep's ladder: :data:`RUNG_LETTERS` for equivtest's own rungs,
    the first free letter of its name (else a digit) for a rung of the user's own."""
    letters = {r: RUNG_LETTERS[r] for r in rungs if r in RUNG_LETTERS}
    taken = set(letters.values()) | {NOT_EQUIVALENT.upper()}  # an X would read as "not equivalent"
    for rung in rungs:
        if rung not in letters:
            free = [c.upper() for c in rung if c.isalpha() and c.upper() not in taken]
            letters[rung] = free[0] if free else next(str(d) for d in range(1, 100) if str(d) not in taken)
            taken.add(letters[rung])
    return letters


def cell_marker(cell: dict, letters: dict[str, str]) -> str:
    """What the heatmap writes in a cell: the rung's letter; with an arrow when only one
    direction passed; ``x`` for not equivalent, ``?`` for undecidable."""
    kind, directions = cell["kind"], cell["directions"]
    if kind == "equivalent":
        return letters[cell["up_to"]]
    if kind == "a_to_b":
        return letters[directions["a->b"]["rung"]] + ONLY_A_TO_B
    if kind == "b_to_a":
        return letters[directions["b->a"]["rung"]] + ONLY_B_TO_A
    return NOT_EQUIVALENT if kind == "not_equivalent" else UNDECIDABLE


def _match_rank(cell: dict, rungs: list[str]) -> tuple:
    """Sort key of a cell as a match: both directions before one, a more rigid rung first, then
    the lower error (a cell without one last)."""
    kind, directions = cell["kind"], cell["directions"]
    if kind == "equivalent":
        tier, rung = 0, cell["up_to"]
    elif kind in ("a_to_b", "b_to_a"):
        tier, rung = 1, directions["a->b" if kind == "a_to_b" else "b->a"]["rung"]
    else:
        tier, rung = 2, None
    error = worse_error(cell)
    return tier, rungs.index(rung) if rung is not None else len(rungs), math.inf if error is None else error


def best_matches(sweep: dict) -> dict[int, dict]:
    """For each row (layer of A) with a cell, its best cell: the most rigid passing rung, then
    the lowest held-out error."""
    best: dict[int, dict] = {}
    for cell in sweep["cells"]:
        i = cell["i"]
        if i not in best or _match_rank(cell, sweep["rungs"]) < _match_rank(best[i], sweep["rungs"]):
            best[i] = cell
    return best


# ----------------------------------------------------------------------------- the table


_VERDICT = {"equivalent": "equivalent", "a_to_b": "a->b only", "b_to_a": "b->a only",
            "not_equivalent": "not equivalent", "undecidable": "undecidable"}
_TABLE_NOTES = ("rung: the most rigid rung that passed in that direction (else failed / undecidable); rel. error "
                "(held-out, 1 - R^2), stitched and null ratio: the worse of the two directions, each of its passing "
                "rung, or of the least rigid rung tried when none passed")


def _worst(cell: dict, key: str, pick, read=_number) -> float | None:
    values = [read(cell["directions"][d][key]) for d in DIRECTIONS]
    values = [v for v in values if v is not None]
    return pick(values) if values else None


def worse_error(cell: dict) -> float | None:
    """The larger held-out relative error of the two directions (``None`` where neither has one):
    a pair is only as equivalent as its worse direction, so the heatmap colours by it."""
    return _worst(cell, "rel_error", max, _finite)


def _is_first_failure(sweep: dict, cell: dict) -> bool:
    ff = sweep["first_failure"]
    return ff is not None and (ff["i"], ff["j"]) == (cell["i"], cell["j"])


def first_failure_text(sweep: dict) -> str:
    """One sentence: where the sweep first falls below its ``up_to`` rung, and by how much."""
    ff, up_to = sweep["first_failure"], sweep["up_to"]
    below = f"below {up_to}" if up_to is not None else "below the ladder"
    if ff is None:
        return f"no layer pair falls {below}"
    layers = ff["layer_a"] if ff["layer_a"] == ff["layer_b"] else f"{ff['layer_a']} / {ff['layer_b']}"
    return f"first failure {below}: {layers} ({ff['by']})" if ff["by"] else f"first failure {below}: {layers}"


def _row(sweep: dict, cell: dict | None, i: int, one_layer_column: bool) -> list:
    layers = [sweep["layers_a"][i]] if one_layer_column else [sweep["layers_a"][i], cell and cell["layer_b"]]
    if cell is None:
        return [*layers, "not run", None, None, None, None, None, None]
    ab, ba = cell["directions"]["a->b"], cell["directions"]["b->a"]
    verdict = _VERDICT[cell["kind"]] + (f" {FIRST_FAILURE_MARK}" if _is_first_failure(sweep, cell) else "")
    return [*layers, verdict, ab["rung"] or ab["status"], ba["rung"] or ba["status"], worse_error(cell),
            _worst(cell, "stitched", min), _worst(cell, "null_ratio", min), _number(cell["cka"])]


def sweep_table(sweep: dict) -> ResultTable:
    """The sweep as a :class:`ResultTable`: for a diagonal sweep one row per layer, for an
    all-pairs sweep the best match of each layer of A (the cell with the most rigid passing
    rung, both directions before one, then the lowest error); the first failure marked in its
    verdict.
    A diagonal sweep of two networks with the same layer names has one layer column."""
    validate_sweep(sweep)
    a, b = sweep["names"]
    diagonal = sweep["mode"] == "diagonal"
    n = min(len(sweep["layers_a"]), len(sweep["layers_b"])) if diagonal else len(sweep["layers_a"])
    one_layer_column = diagonal and sweep["layers_a"][:n] == sweep["layers_b"][:n]
    layer_columns = (["layer"] if one_layer_column else
                     ["layer (a)", "layer (b)" if diagonal else "best match (b)"])
    title = f"Sweep {a} vs. {b}: " + ("layer by layer" if diagonal else "best match in b for each layer of a")
    notes = f"{first_failure_text(sweep)}. a = {a}, b = {b}. {_TABLE_NOTES}."
    if not diagonal:
        notes += f" {len(sweep['cells'])} cells of {len(sweep['layers_a'])} x {len(sweep['layers_b'])}."
    table = ResultTable(title, [*layer_columns, "verdict", "rung a->b", "rung b->a", "rel. error", "stitched",
                                "null ratio", "CKA"], notes=notes)
    cells = {c["i"]: c for c in sweep["cells"]} if diagonal else best_matches(sweep)
    for i in range(n):
        table.add_row(*_row(sweep, cells.get(i), i, one_layer_column))
    return table


# ----------------------------------------------------------------------------- the heatmap


def _abbreviate(name: str, width: int) -> str:
    """``name`` in at most ``width`` characters, keeping its numbers (which layer it is): its
    leading components cut to their first letter and trailing digits, left to right
    (``encoder.layer.7.output`` -> ``e.l.7.output``, ``layer2.0.conv1`` -> ``l2.0.conv1``), then,
    if still too long, its middle replaced by an ellipsis."""
    parts = name.split(".")
    for k in range(len(parts) - 1):
        if len(".".join(parts)) <= width:
            break
        parts[k] = parts[k][:1] + re.sub(r"^.*?(\d*)$", r"\1", parts[k][1:])  # layer2 -> l2, attention -> a
    short = ".".join(parts)
    keep = width - 1
    return short if len(short) <= width else short[: keep // 2] + "…" + short[len(short) - (keep - keep // 2):]


def short_layer_names(layers: list[str], width: int) -> tuple[list[str], str]:
    """Tick labels for ``layers`` and the pattern of what they share (``encoder.layer.*``), which
    the axis label names once: the dotted components every name shares at its start and end
    are cut, then a name longer than ``width`` is abbreviated (:func:`_abbreviate`); names
    that still clash get their index."""
    parts = [name.split(".") for name in layers]
    head = tail = 0
    if len(parts) > 1:
        while all(len(p) > head + 1 and p[head] == parts[0][head] for p in parts):
            head += 1
        while all(len(p) > head + tail + 1 and p[-1 - tail] == parts[0][-1 - tail] for p in parts):
            tail += 1
    pattern = ".".join([*parts[0][:head], "*", *parts[0][len(parts[0]) - tail:]]) if head or tail else ""
    short = [_abbreviate(".".join(p[head:len(p) - tail]), width) for p in parts]
    if len(set(short)) < len(short):
        short = [f"{k}:{s}" for k, s in enumerate(short)]
    return short, pattern


def _error_norm(errors: list[float]):
    """A log colour scale over the positive errors (zeros drawn at the smallest one)."""
    import numpy as np
    from matplotlib.colors import LogNorm

    positive = [e for e in errors if e > 0]
    if not positive:  # every error exactly zero, or none: any range shows it; machine epsilon to 1
        return LogNorm(vmin=float(np.finfo(float).eps), vmax=1.0)
    low, high = min(positive), max(positive)
    return LogNorm(vmin=low / 10, vmax=high * 10) if low == high else LogNorm(vmin=low, vmax=high)


def _ink(rgba) -> str:
    """Black or white, whichever reads on a cell of colour ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _legend_handles(sweep: dict, letters: dict[str, str]):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    def text(symbol: str, label: str):
        return Line2D([], [], linestyle="none", marker=f"$\\mathrm{{{symbol}}}$" if symbol.isalnum() else f"${symbol}$",
                      markersize=8, color="black", label=label)

    handles = [text(letters[r], r) for r in sweep["rungs"]]
    handles += [text(r"\rightarrow", "only a->b passes"), text(r"\leftarrow", "only b->a passes"),
                text("x", "not equivalent"), text("?", "undecidable"),
                Patch(facecolor="0.8", edgecolor="0.6", label="no error computed"),
                Patch(facecolor="white", edgecolor="0.6", label="not run")]
    if sweep["first_failure"] is not None:
        below = f"below {sweep['up_to']}" if sweep["up_to"] else "first failure"
        handles.append(Patch(facecolor="none", edgecolor="red", linewidth=2, label=f"first failure ({below})"))
    return handles


def sweep_heatmap(sweep: dict):
    """The sweep as a matplotlib :class:`~matplotlib.figure.Figure`: layer of A (rows) x layer
    of B (columns), colour = held-out relative error of the worse direction (log scale, with
    a colour bar), the rung's letter in each cell (legend beneath), the first failure
    outlined in red, cells not run left blank. Readable from 2 x 2 to 24 x 24 layers."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    validate_sweep(sweep)
    n_rows, n_cols = len(sweep["layers_a"]), len(sweep["layers_b"])
    size = max(n_rows, n_cols)
    cell_in = min(0.75, max(0.3, 6.0 / size))  # inches per cell: large for a few layers, 0.3 at 20 and more
    letter_pt, tick_pt = min(12.0, cell_in * 72 * 0.4), min(10.0, cell_in * 72 * 0.38)
    width = 22 if size <= 8 else 14
    labels_a, pattern_a = short_layer_names(sweep["layers_a"], width)
    labels_b, pattern_b = short_layer_names(sweep["layers_b"], width)
    letters = rung_letters(sweep["rungs"])

    fig = Figure(figsize=(n_cols * cell_in + 3.2, n_rows * cell_in + 2.6), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["viridis"]
    errors = {(c["i"], c["j"]): worse_error(c) for c in sweep["cells"]}
    norm = _error_norm([e for e in errors.values() if e is not None])
    ax.set(xlim=(-0.5, n_cols - 0.5), ylim=(n_rows - 0.5, -0.5), aspect="equal")
    for cell in sweep["cells"]:
        i, j, error = cell["i"], cell["j"], errors[cell["i"], cell["j"]]
        colour = cmap(norm(max(error, norm.vmin))) if error is not None else (0.8, 0.8, 0.8, 1.0)
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor=colour, edgecolor="white", linewidth=0.5))
        ax.text(j, i, cell_marker(cell, letters), ha="center", va="center", fontsize=letter_pt,
                color=_ink(colour), fontweight="bold")
    ff = sweep["first_failure"]
    if ff is not None:
        ax.add_patch(Rectangle((ff["j"] - 0.5, ff["i"] - 0.5), 1, 1, fill=False, edgecolor="red",
                               linewidth=max(2.0, cell_in * 4), zorder=3))
    ax.set_xticks(range(n_cols), labels_b, fontsize=tick_pt, rotation=90 if size > 8 or max(map(len, labels_b)) > 4 else 0)
    ax.set_yticks(range(n_rows), labels_a, fontsize=tick_pt)
    ax.set_xticks([x - 0.5 for x in range(n_cols + 1)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(n_rows + 1)], minor=True)
    ax.grid(which="minor", color="0.85", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    a, b = sweep["names"]
    ax.set_ylabel(f"layer of {a} (a)" + (f": {pattern_a}" if pattern_a else ""))
    ax.set_xlabel(f"layer of {b} (b)" + (f": {pattern_b}" if pattern_b else ""))
    fig_width = n_cols * cell_in + 3.2
    ax.set_title("\n".join(textwrap.wrap(f"{a} vs. {b}, {'diagonal' if sweep['mode'] == 'diagonal' else 'all pairs'}: "
                                         f"{first_failure_text(sweep)}", width=int(fig_width * 11))), fontsize=10)
    mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = fig.colorbar(mappable, ax=ax, shrink=min(1.0, max(0.5, 4.0 / (n_rows * cell_in))))
    bar.set_label("held-out rel. error, worse of a->b and b->a", fontsize=9)
    handles = _legend_handles(sweep, letters)
    fig.legend(handles=handles, loc="outside lower center", ncols=max(2, int(fig_width / 1.9)), fontsize=8,
               frameon=False, handletextpad=0.3, columnspacing=1.0)
    return fig
