"""Fit times of the ladder's maps (``equivtest.maps``) against scikit-learn on the same rows, in one run.

```bash
python benchmarks/maps.py                 # 5,000 rows x 384 features, 3 repeats (about a minute)
python benchmarks/maps.py --rows 1000 --features 64 --repeats 1 --out reports/maps_quick.json
python benchmarks/maps.py --device cpu --rows 20000 --features 768 --repeats 1   # numpy against torch on a device
```

With ``--device D`` it times instead the orthogonal and the affine map (penalty
cross-validated) with ``device=None`` (numpy) and ``device=D`` (the same formulas in torch
float64 on ``D``) on the same rows, alternately, and checks that both fitted the same map
(largest difference of the fitted arrays and the predictions, relative to their largest
value). The ratio is numpy seconds / device seconds (above 1: the device is faster).

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


def run_device(device: str, n: int = 20000, width: int = 768, repeats: int = 1) -> dict:
    """Orthogonal and cross-validated affine fits, ``device=None`` against ``device``, on the same rows."""
    data = make_rows(n, width)
    x, groups = data["x"], data["groups"]
    rows = []
    for name, target, cls in (("orthogonal", data["orthogonal"], Orthogonal),
                              ("affine (8 penalties, 5-fold CV)", data["affine"], Affine)):
        times = {None: [], device: []}
        fitted = {}
        for _ in range(repeats):
            for dev in (None, device):  # alternately, so both see the same load
                start = time.perf_counter()
                fitted[dev] = cls(device=dev).fit(x, target, groups)
                times[dev].append(time.perf_counter() - start)
        numpy_s, device_s = float(np.median(times[None])), float(np.median(times[device]))
        fit_diff = max(_rel_diff(getattr(fitted[device], attr), getattr(fitted[None], attr))
                       for attr in cls.fitted_arrays)
        predict_diff = _rel_diff(fitted[device].predict(x[:2000]), fitted[None].predict(x[:2000]))
        xc = x - x.mean(axis=0)
        eigenvalues = np.linalg.eigvalsh(xc.T @ xc)
        rows.append({"map": name, "numpy_s": numpy_s, "device_s": device_s, "ratio": numpy_s / device_s,
                     "max_rel_diff_fitted": fit_diff, "max_rel_diff_predict": predict_diff,
                     "alpha": getattr(fitted[None], "alpha_", None),
                     "condition_xtx": float(eigenvalues[-1] / eigenvalues[0]), "runs": repeats})
        print(f"{name:32s} numpy {numpy_s:8.2f} s  device={device} {device_s:8.2f} s  ratio {numpy_s / device_s:5.2f}  "
              f"max rel. diff fitted {fit_diff:.1e}, predictions {predict_diff:.1e}", file=sys.stderr)
    return {
        "schema": "equivtest.benchmark.maps_device", "schema_version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": n, "features": width, "rows_per_input": 50, "repeats": repeats, "device": device,
        "results": rows, "machine": _bench_module().machine_info(),
        "ratio": "numpy seconds / device seconds (above 1: the device is faster)",
        "load_average_1min": round(os.getloadavg()[0], 2),
    }


def _rel_diff(got: np.ndarray, want: np.ndarray) -> float:
    """Largest difference relative to the largest value of ``want`` (0 for an empty array)."""
    if not want.size:
        return 0.0
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def render_device(result: dict) -> str:
    lines = [f"{result['rows']:,} rows x {result['features']} features, median of {result['repeats']} runs, "
             f"1-minute load {result['load_average_1min']} at the end", "",
             f"| map | numpy s | device={result['device']} s | ratio | max rel. diff fitted | predictions |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in result["results"]:
        lines.append(f"| {r['map']} | {r['numpy_s']:.2f} | {r['device_s']:.2f} | {r['ratio']:.2f}x | "
                     f"{r['max_rel_diff_fitted']:.1e} | {r['max_rel_diff_predict']:.1e} |")
    lines.append("")
    lines.append(f"condition of the centred X^T X: {result['results'][0]['condition_xtx']:.3g}; affine penalty "
                 f"chosen: {result['results'][-1]['alpha']:g} (relative to its mean eigenvalue)")
    return "\n".join(lines)


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
    parser.add_argument("--device", default=None,
                        help="time the orthogonal and affine maps with device=None against this torch device")
    parser.add_argument("--out", default=None,
                        help="default reports/maps_benchmark.json (reports/maps_device_benchmark.json with --device)")
    args = parser.parse_args(argv)
    if args.device is not None:
        result = run_device(args.device, args.rows, args.features, args.repeats)
        print(render_device(result))
    else:
        result = run(args.rows, args.features, args.repeats, nonlinear=not args.no_nonlinear)
        print(render(result))
    out = Path(args.out or ("reports/maps_benchmark.json" if args.device is None else "reports/maps_device_benchmark.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
