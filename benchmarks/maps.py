"""Fit times of the ladder's maps (``equivtest.maps``) against scikit-learn on the same rows, in one run.

```bash
python benchmarks/maps.py                 # 5,000 rows x 384 features, 3 repeats (about a minute)
python benchmarks/maps.py --rows 1000 --features 64 --repeats 1 --out reports/maps_quick.json
```

Rows: ``X`` Gaussian with correlated features (a random mixing matrix), 50 rows per input
(groups), and for each map the target it recovers (``X`` permuted, rotated and scaled,
rescaled per neuron, affine). Every fit is checked: the relative error of the fitted map
on its own rows is printed next to the time (it must be tiny).

References, same rows, same process: ``LinearRegression`` (the unpenalised affine fit,
for every rigid rung: how much a rigid map saves over fitting a general one), ``Ridge``
at the penalty the fixed-penalty affine map uses, and ``GridSearchCV(Ridge, 8 penalties,
GroupKFold(5))`` for the affine map with its penalty cross-validated over inputs (the
same 8 penalties, the same folds). The ratio is reference seconds / equivtest seconds
(above 1: equivtest is faster). Times are medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from equivtest.maps import Affine, Diagonal, Identity, Nonlinear, Orthogonal, Permutation, relative_error
from equivtest.maps.affine import DEFAULT_ALPHAS


def _bench_module():
    """``benchmarks/bench.py`` for its ``machine_info`` (one definition of what the machine was)."""
    spec = importlib.util.spec_from_file_location("equivtest_benchmark_bench", Path(__file__).with_name("bench.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def make_rows(n: int, width: int, per_input: int = 50, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, width)) @ rng.normal(size=(width, width)) / np.sqrt(width) + rng.normal(size=width)
    rotation, _ = np.linalg.qr(rng.normal(size=(width, width)))
    return {
        "x": x, "groups": np.arange(n) // per_input,
        "identity": x.copy(),
        "permutation": x[:, rng.permutation(width)],
        "orthogonal": 1.7 * x @ rotation + 0.5,
        "diagonal": x * rng.uniform(0.5, 2.0, size=width) + rng.normal(size=width),
        "affine": x @ rng.normal(size=(width, width)) + 1.0,
    }


def run(n: int = 5000, width: int = 384, repeats: int = 3, nonlinear: bool = True) -> dict:
    from sklearn.linear_model import LinearRegression, Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold

    data = make_rows(n, width)
    x, groups = data["x"], data["groups"]
    rows = []

    def add(name, target, make, reference_name, reference, runs=repeats):
        fitted = make().fit(x, target, groups)
        err = relative_error(fitted.predict(x), target)
        eq_s = median_time(lambda: make().fit(x, target, groups), runs)
        ref_s = median_time(reference, runs)
        rows.append({"map": name, "equivtest_s": eq_s, "fit_rel_error": err, "reference": reference_name,
                     "reference_s": ref_s, "ratio": ref_s / eq_s, "runs": runs})
        print(f"{name:28s} {eq_s:9.4f} s  (rel. error {err:.1e})  {reference_name:34s} {ref_s:9.4f} s  "
              f"ratio {ref_s / eq_s:7.1f}", file=sys.stderr)

    for cls in (Identity, Permutation, Orthogonal, Diagonal):
        target = data[cls.name]
        add(cls.name, target, cls, "LinearRegression", lambda t=target: LinearRegression().fit(x, t))
    target = data["affine"]
    # equivtest's penalties are relative to the mean eigenvalue of the centred X^T X; sklearn's are absolute
    unit = float(np.trace(np.cov(x.T, bias=True)) * n / width)
    add("affine (fixed penalty)", target, lambda: Affine(alpha=1e-6), "Ridge (same penalty)",
        lambda: Ridge(alpha=1e-6 * unit).fit(x, target))
    grid = {"alpha": [a * unit for a in DEFAULT_ALPHAS]}
    add("affine (8 penalties, 5-fold CV)", target, Affine, "GridSearchCV(Ridge), GroupKFold(5)",
        lambda: GridSearchCV(Ridge(), grid, cv=GroupKFold(5)).fit(x, target, groups=groups))
    if nonlinear:
        add("nonlinear (affine + RBF)", target, Nonlinear, "GridSearchCV(Ridge), GroupKFold(5)",
            lambda: GridSearchCV(Ridge(), grid, cv=GroupKFold(5)).fit(x, target, groups=groups), runs=1)
    bench = _bench_module()
    return {
        "schema": "equivtest.benchmark.maps", "schema_version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": n, "features": width, "rows_per_input": 50, "repeats": repeats,
        "results": rows, "machine": bench.machine_info(),
        "ratio": "reference seconds / equivtest seconds (above 1: equivtest is faster)",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def render(result: dict) -> str:
    lines = [f"{result['rows']:,} rows x {result['features']} features, median of {result['repeats']} runs, "
             f"1-minute load {result['load_average_1min']}", "",
             "| map | equivtest s | fit rel. error | reference | reference s | ratio |", "|---|---:|---:|---|---:|---:|"]
    for r in result["results"]:
        lines.append(f"| {r['map']} | {r['equivtest_s']:.4f} | {r['fit_rel_error']:.1e} | {r['reference']} | "
                     f"{r['reference_s']:.4f} | {r['ratio']:.1f}x |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--features", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-nonlinear", action="store_true")
    parser.add_argument("--out", default="reports/maps_benchmark.json")
    args = parser.parse_args(argv)
    result = run(args.rows, args.features, args.repeats, nonlinear=not args.no_nonlinear)
    print(render(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
