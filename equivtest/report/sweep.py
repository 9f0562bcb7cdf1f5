"""A sweep in the terminal: one row per layer of A with its match (placeholder until the report
helper's module, with the HTML heatmap, replaces it; the interface stays ``sweep_table(sweep_dict)``)."""

from __future__ import annotations

from .tables import ResultTable


def _worse(cell: dict, key: str, pick):
    values = [d[key] for d in cell["directions"].values() if isinstance(d.get(key), (int, float))]
    return pick(values) if values else None


def sweep_table(sweep: dict) -> ResultTable:
    """The diagonal (same-architecture sweep) or, per layer of A, its best match in B."""
    from ..sweep_result import SweepResult

    result = SweepResult.from_dict(sweep)
    first = sweep.get("first_failure")
    title = (f"Sweep {sweep['names'][0]} vs {sweep['names'][1]} ({sweep['mode']}): "
             + (f"first layer not equivalent up to {sweep['up_to']}: {first['layer_a']}" if first
                else f"every layer equivalent up to {sweep['up_to']}"))
    table = ResultTable(title, ["layer A", "layer B", "verdict", "a->b rung", "b->a rung", "held-out rel. error",
                                "stitched", "null ratio", "CKA"],
                        notes="per layer of A: the same layer of B (diagonal) or its best match; figures are the "
                              "worse of the two directions, at each direction's passing rung (or its least rigid rung)")
    for cell in result.matches():
        c = cell.to_dict()
        table.add_row(c["layer_a"], c["layer_b"], c["up_to"] or c["kind"], c["directions"]["a->b"]["rung"],
                      c["directions"]["b->a"]["rung"], _worse(c, "rel_error", max), _worse(c, "stitched", min),
                      _worse(c, "null_ratio", min), c["cka"])
    return table
