"""The grid a sweep gives: one verdict per layer pair, frozen, with the question a sweep answers
(where does equivalence first break?) and its assertion.

``SweepResult.to_dict()`` is the JSON a run record holds under ``record["sweep"]`` (schema 1,
see docs/guide/sweeps.md); non-finite figures are the strings ``"inf"``/``"nan"``, as in
:meth:`equivtest.verdict.Verdict.to_dict`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import EquivtestError
from .verdict import DIRECTIONS, LABELS, NotEquivalentError, Thresholds, _finite_json

SCHEMA = 1
FIGURES = ("rel_error", "stitched", "null_ratio")
# the worse of the two directions, per figure: larger error, smaller stitched score and null ratio
_WORSE = {"rel_error": max, "stitched": min, "null_ratio": min}
_HIGHER_IS_BETTER = {"rel_error": False, "stitched": True, "null_ratio": True}


@dataclass(frozen=True)
class DirectionFigures:
    """One direction of one cell: its status, the most rigid rung that passed, and the figures of
    that rung (or, when none passed, of the least rigid rung tried)."""

    direction: str
    status: str  # "passed", "failed", "undecidable"
    rung: str | None
    rel_error: float | None
    stitched: float | None
    null_ratio: float | None

    def to_dict(self) -> dict:
        return {"status": self.status, "rung": self.rung, "rel_error": self.rel_error, "stitched": self.stitched,
                "null_ratio": self.null_ratio}


@dataclass(frozen=True)
class Cell:
    """The verdict on layer ``layer_a`` (row ``i``) of A against ``layer_b`` (column ``j``) of B."""

    i: int
    j: int
    layer_a: str
    layer_b: str
    kind: str
    up_to: str | None
    text: str
    directions: tuple[DirectionFigures, ...]
    cka: float | None

    def direction(self, direction: str) -> DirectionFigures:
        return next(d for d in self.directions if d.direction == direction)

    def figure(self, name: str, direction: str | None = None) -> float:
        """``rel_error``, ``stitched`` or ``null_ratio`` of one direction, or the worse of the two (NaN: none)."""
        if name not in FIGURES:
            raise EquivtestError(f"a cell's figures are {FIGURES}, got {name!r}")
        if direction is not None:
            value = getattr(self.direction(direction), name)
            return math.nan if value is None else float(value)
        values = [float(v) for d in self.directions if (v := getattr(d, name)) is not None and not math.isnan(v)]
        return _WORSE[name](values) if values else math.nan

    def reaches(self, up_to: str, rungs) -> bool:
        """Whether both directions are reached by ``up_to`` or a more rigid rung."""
        return self.kind == "equivalent" and list(rungs).index(self.up_to) <= list(rungs).index(up_to)

    def rank(self, rungs) -> tuple:
        """Sorts cells best first: the most rigid verdict, then the smaller held-out error."""
        order = {"a_to_b": 0, "b_to_a": 0, "not_equivalent": 1, "undecidable": 2}
        level = list(rungs).index(self.up_to) if self.kind == "equivalent" else len(rungs) + order[self.kind]
        error = self.figure("rel_error")
        return level, math.inf if math.isnan(error) else error

    def to_dict(self) -> dict:
        return {"i": self.i, "j": self.j, "layer_a": self.layer_a, "layer_b": self.layer_b, "kind": self.kind,
                "up_to": self.up_to, "text": self.text, "directions": {d.direction: d.to_dict() for d in self.directions},
                "cka": self.cka}

    @classmethod
    def from_dict(cls, data: dict) -> "Cell":
        def number(v):
            return float(v) if isinstance(v, str) else v  # "inf", "nan" back to floats

        directions = tuple(DirectionFigures(name, d["status"], d["rung"], number(d["rel_error"]), number(d["stitched"]),
                                            number(d["null_ratio"])) for name, d in data["directions"].items())
        return cls(int(data["i"]), int(data["j"]), data["layer_a"], data["layer_b"], data["kind"], data["up_to"],
                   data["text"], directions, number(data["cka"]))


@dataclass(frozen=True)
class SweepResult:
    """The grid of a sweep (see :func:`equivtest.sweep.sweep`). Nothing in it changes after it is made."""

    mode: str  # "all" or "diagonal"
    names: tuple[str, str]
    layers_a: tuple[str, ...]
    layers_b: tuple[str, ...]
    rungs: tuple[str, ...]
    up_to: str
    cells: tuple[Cell, ...]
    thresholds: tuple[tuple[str, Thresholds], ...]  # rung -> what its map had to meet

    def __post_init__(self):
        if self.up_to not in self.rungs:
            raise EquivtestError(f"up_to={self.up_to!r} is not on the sweep's ladder {list(self.rungs)}")

    # -- reading -------------------------------------------------------------------------
    def cell(self, layer_a: str, layer_b: str | None = None) -> Cell:
        """The cell of two layers (``layer_b`` defaults to ``layer_a``: the diagonal)."""
        layer_b = layer_a if layer_b is None else layer_b
        for c in self.cells:
            if c.layer_a == layer_a and c.layer_b == layer_b:
                return c
        raise EquivtestError(f"the sweep has no cell ({layer_a!r}, {layer_b!r}); its layers: A {list(self.layers_a)}, "
                             f"B {list(self.layers_b)}")

    def grid(self, field: str, direction: str | None = None) -> np.ndarray:
        """``(len(layers_a), len(layers_b))`` array of a figure, NaN where no cell was fitted.

        ``field``: ``"rel_error"``, ``"stitched"``, ``"null_ratio"`` (of ``direction``, default
        the worse of the two), ``"cka"``, or ``"rung"`` (the index in :attr:`rungs` of the
        verdict's ``up_to``, or of ``direction``'s passing rung; NaN where none)."""
        if direction is not None and direction not in DIRECTIONS:
            raise EquivtestError(f"direction must be one of {DIRECTIONS} or None (the worse of the two), got {direction!r}")
        out = np.full((len(self.layers_a), len(self.layers_b)), np.nan)
        for c in self.cells:
            if field == "cka":
                value = math.nan if c.cka is None else c.cka
            elif field == "rung":
                rung = c.up_to if direction is None else c.direction(direction).rung
                value = math.nan if rung is None else self.rungs.index(rung)
            elif field in FIGURES:
                value = c.figure(field, direction)
            else:
                raise EquivtestError(f"grid() reads one of {FIGURES + ('cka', 'rung')}, got {field!r}")
            out[c.i, c.j] = value
        return out

    def matches(self) -> tuple[Cell, ...]:
        """Per layer of A (in order), the cell that answers "is this layer still equivalent?": the
        diagonal cell in a diagonal sweep; in an all-pairs sweep the best cell of the row (most
        rigid verdict, then the smallest held-out error)."""
        if self.mode == "diagonal":
            return tuple(sorted(self.cells, key=lambda c: c.i))
        rows = {}
        for c in self.cells:
            if c.i not in rows or c.rank(self.rungs) < rows[c.i].rank(self.rungs):
                rows[c.i] = c
        return tuple(rows[i] for i in sorted(rows))

    @property
    def first_failure(self) -> dict | None:
        """The first layer (input to output) whose match is not equivalent up to :attr:`up_to`, and by how much."""
        return self.failure(self.up_to)

    def failure(self, up_to: str, through: str | None = None) -> dict | None:
        """Like :attr:`first_failure` for another rung, looking only at layers of A up to ``through``."""
        failing = self.failing(up_to, through)
        return None if not failing else self._failure_dict(failing[0], up_to)

    def failing(self, up_to: str, through: str | None = None) -> list[Cell]:
        """Every match (see :meth:`matches`) up to layer ``through`` of A that ``up_to`` does not reach."""
        if up_to not in self.rungs:
            raise EquivtestError(f"up_to={up_to!r} is not on the sweep's ladder {list(self.rungs)}")
        last = len(self.layers_a) - 1
        if through is not None:
            if through not in self.layers_a:
                raise EquivtestError(f"through={through!r} is not a layer of the sweep; its layers: {list(self.layers_a)}")
            last = self.layers_a.index(through)
        return [c for c in self.matches() if c.i <= last and not c.reaches(up_to, self.rungs)]

    def _failure_dict(self, cell: Cell, up_to: str) -> dict:
        return {"i": cell.i, "j": cell.j, "layer_a": cell.layer_a, "layer_b": cell.layer_b, "kind": cell.kind,
                "up_to": cell.up_to, "rel_error": _none_if_nan(cell.figure("rel_error")), "by": self.by(cell, up_to)}

    def by(self, cell: Cell, up_to: str) -> str:
        """How far ``cell`` falls below ``up_to``, direction by direction, against the thresholds."""
        limits = dict(self.thresholds)
        parts = []
        for d in cell.directions:
            if d.status == "passed" and self.rungs.index(d.rung) <= self.rungs.index(up_to):
                continue
            limit = limits.get(d.rung or self.rungs[-1], Thresholds())
            head = (f"{d.direction} reached only by {LABELS.get(d.rung, d.rung)}" if d.status == "passed"
                    else f"{d.direction} {d.status} on every rung tried")
            figures = []
            if d.rel_error is not None:
                ratio = d.rel_error / limit.max_rel_error if limit.max_rel_error else math.inf
                figures.append(f"held-out rel. error {d.rel_error:.3g} ({ratio:.3g}x the limit {limit.max_rel_error:g})")
            if d.stitched is not None and not math.isnan(d.stitched):
                figures.append(f"stitched {d.stitched:.4g} (limit {limit.min_stitched:g})")
            if d.null_ratio is not None:
                figures.append(f"null ratio {d.null_ratio:.3g}")
            rung = d.rung or self.rungs[-1]  # a failed direction tried every rung
            parts.append(f"{head}" + (f"; at {rung}: " + ", ".join(figures) if figures else ""))
        return "; ".join(parts) or cell.text

    def assert_equivalent(self, up_to: str = "affine", through: str | None = None) -> "SweepResult":
        """Self if every layer of A up to ``through`` (default: all) is equivalent to its match up to
        ``up_to``; else :class:`~equivtest.verdict.NotEquivalentError` listing the failing layers."""
        failing = self.failing(up_to, through)
        if not failing:
            return self
        span = f"through {through}" if through else "at every layer"
        lines = [f"{self.names[0]} and {self.names[1]} are not equivalent up to {LABELS.get(up_to, up_to)} {span}: "
                 f"{len(failing)} layer(s) fail, the first {failing[0].layer_a}"]
        for c in failing:
            lines.append(f"  {c.layer_a} vs {c.layer_b}: {c.text}; {self.by(c, up_to)}")
        raise NotEquivalentError("\n".join(lines))

    def to_dict(self) -> dict:
        return _finite_json({
            "schema": SCHEMA, "mode": self.mode, "names": list(self.names), "layers_a": list(self.layers_a),
            "layers_b": list(self.layers_b), "rungs": list(self.rungs), "up_to": self.up_to,
            "first_failure": self.first_failure, "cells": [c.to_dict() for c in self.cells],
        })

    @classmethod
    def from_dict(cls, data: dict, thresholds=None) -> "SweepResult":
        """A result back from :meth:`to_dict` (``thresholds``: rung -> Thresholds, default the defaults)."""
        if data.get("schema") != SCHEMA:
            raise EquivtestError(f"not a sweep of schema {SCHEMA} (schema {data.get('schema')!r})")
        rungs = tuple(data["rungs"])
        limits = tuple((r, (thresholds or {}).get(r, Thresholds())) for r in rungs)
        return cls(data["mode"], tuple(data["names"]), tuple(data["layers_a"]), tuple(data["layers_b"]), rungs,
                   data["up_to"], tuple(Cell.from_dict(c) for c in data["cells"]), limits)


def _none_if_nan(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)
