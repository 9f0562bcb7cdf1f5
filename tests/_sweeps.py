"""Hand-made sweep dicts (the schema of ``SweepResult.to_dict()``) for the report tests."""

from __future__ import annotations

RUNGS = ["identity", "permutation", "orthogonal", "diagonal", "affine", "nonlinear"]


def direction(rung: str | None = None, *, status: str | None = None, rel_error=1e-3, stitched=1.0,
              null_ratio=1e3) -> dict:
    return {"status": status or ("passed" if rung else "failed"), "rung": rung, "rel_error": rel_error,
            "stitched": stitched, "null_ratio": null_ratio}


def cell(i: int, j: int, layers_a, layers_b, ab: dict, ba: dict, cka=0.9) -> dict:
    """A cell whose kind, up_to and text follow from its two directions, as a Verdict's do."""
    statuses = (ab["status"], ba["status"])
    up_to = None
    if statuses == ("passed", "passed"):
        up_to = max(ab["rung"], ba["rung"], key=RUNGS.index)
        kind, text = "equivalent", f"equivalent up to {up_to}"
    elif statuses == ("failed", "failed"):
        kind, text = "not_equivalent", "not equivalent: no rung maps either network onto the other"
    elif statuses == ("passed", "failed"):
        kind, text = "a_to_b", f"B is reachable from A but A not from B (a->b by {ab['rung']})"
    elif statuses == ("failed", "passed"):
        kind, text = "b_to_a", f"A is reachable from B but B not from A (b->a by {ba['rung']})"
    else:
        kind, text = "undecidable", "undecidable: too few rows"
    return {"i": i, "j": j, "layer_a": layers_a[i], "layer_b": layers_b[j], "kind": kind, "up_to": up_to,
            "text": text, "directions": {"a->b": ab, "b->a": ba}, "cka": cka}


def sweep(mode: str, layers_a, layers_b, cells, first_failure=None, up_to="affine",
          names=("bert", "bert-int8")) -> dict:
    return {"schema": 1, "mode": mode, "names": list(names), "layers_a": list(layers_a), "layers_b": list(layers_b),
            "rungs": list(RUNGS), "up_to": up_to, "first_failure": first_failure, "cells": cells}


def first_failure(c: dict, by: str) -> dict:
    return {"i": c["i"], "j": c["j"], "layer_a": c["layer_a"], "layer_b": c["layer_b"], "kind": c["kind"],
            "up_to": c["up_to"], "rel_error": max(c["directions"][d]["rel_error"] for d in ("a->b", "b->a")), "by": by}


# the diagonal of a network against its modified copy: rigid early, failing from layer 4 on
DIAGONAL_RUNGS = ["identity", "identity", "orthogonal", "affine", "nonlinear", None]
DIAGONAL_ERRORS = [1e-12, 1e-9, 1e-5, 3e-4, 2e-2, 0.4]


def diagonal_6x6() -> dict:
    layers = [f"encoder.layer.{k}" for k in range(6)]
    cells = [cell(k, k, layers, layers, direction(rung, rel_error=err), direction(rung, rel_error=err / 2),
                  cka=1.0 - err)
             for k, (rung, err) in enumerate(zip(DIAGONAL_RUNGS, DIAGONAL_ERRORS))]
    return sweep("diagonal", layers, layers, cells,
                 first_failure(cells[4], "equivalent only up to nonlinear: affine rel. error 0.08 > 0.001"))


def all_pairs_3x4() -> dict:
    """Row 0's best match is (0, 0) (identity both ways); row 1's is (1, 2) (affine both ways,
    lower error than (1, 1); (1, 0) passes one way only, at identity, and ranks below both);
    row 2 has no passing cell, its best is the lowest error (2, 2); (2, 3) was not run."""
    a, b = ["conv1", "layer1", "layer2"], ["stem", "block1", "block2", "head"]
    d = direction
    cells = [
        cell(0, 0, a, b, d("identity", rel_error=1e-14), d("identity", rel_error=1e-14), cka=1.0),
        cell(0, 1, a, b, d("affine", rel_error=1e-4), d("nonlinear", rel_error=1e-3)),
        cell(0, 2, a, b, d(rel_error=0.3), d(rel_error=0.2)),
        cell(0, 3, a, b, d(rel_error=0.9), d(rel_error=0.8)),
        cell(1, 0, a, b, d("identity", rel_error=1e-6), d(rel_error=0.5)),
        cell(1, 1, a, b, d("affine", rel_error=5e-4), d("affine", rel_error=4e-4)),
        cell(1, 2, a, b, d("affine", rel_error=2e-4), d("affine", rel_error=1e-4)),
        cell(1, 3, a, b, d(rel_error=0.7), d("nonlinear", rel_error=1e-3)),
        cell(2, 0, a, b, d(status="undecidable", rel_error=None, stitched=None, null_ratio=None),
             d(status="undecidable", rel_error=None, stitched=None, null_ratio=None), cka=None),
        cell(2, 1, a, b, d(rel_error=0.5), d(rel_error=0.5)),
        cell(2, 2, a, b, d(rel_error=0.3), d(rel_error=0.25)),
    ]
    return sweep("all", a, b, cells, first_failure(cells[4], "b->a fails at every rung"), names=("resnet", "resnet-pruned"))


def diagonal_square(n: int, names=None) -> dict:
    """An n x n all-pairs sweep with transformers-length layer names, errors rising off the diagonal."""
    layers = names or [f"bert.encoder.layer.{k}.output.dense" for k in range(n)]
    cells = []
    for i in range(n):
        for j in range(n):
            err = 10.0 ** (-10 + 9 * abs(i - j) / max(1, n - 1)) * (1 + i / n)
            rung = ("identity" if err < 1e-8 else "orthogonal" if err < 1e-5 else "affine" if err < 1e-3
                    else "nonlinear" if err < 1e-2 else None)
            cells.append(cell(i, j, layers, layers, direction(rung, rel_error=err), direction(rung, rel_error=err)))
    ff = next(c for c in cells if c["kind"] != "equivalent" or RUNGS.index(c["up_to"]) > RUNGS.index("affine"))
    return sweep("all", layers, layers, cells, first_failure(ff, "falls below affine"))
