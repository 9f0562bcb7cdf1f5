"""Neighbourhood geometry at real widths: today's dense path against the low-rank one, in one run.

    python benchmarks/widths.py [--widths 96,384,768,1536,3072] [--n 2000] [--m 64] [--out FILE]

For each width F, neighbourhood activations of N rows x M neighbours are written once
to a float32 file (a smooth layer of an 8-d input, plus isotropic noise of std 1e-2 so
that every neighbourhood keeps all M - 1 directions above the cut-off, the costly
case) and read back chunk by chunk, as a lazy capture would serve them. Each
measurement runs in a child process, so its peak resident memory (``ru_maxrss``)
is its own:

* **dense**: today's computation, ``precision_factors(neighbourhood_covariances(chunk))``
  chunk by chunk, the chunk sized so that its F x F covariances take at most
  ``--dense-chunk-gib`` (today's default chunk, 512 MiB of activations, would form
  6.4 GB of covariances at once at F = 768). It is timed on the first ``--probe-rows``
  rows; where all N would take longer than ``--dense-budget-s`` by that measure, the
  probe's time is scaled to N (labelled ``extrapolated``: each row costs the same, an
  eigendecomposition of F x F), otherwise all N rows are timed.
* **low-rank**: ``neighbourhood_precision_factors`` (the thin SVD of each neighbourhood,
  through its M x M Gram matrix), then the kernel's
  squared distances ``mahalanobis_sq_dense`` on those factors (the same work for
  both paths: both give factors of width r = M - 1 here).

With ``--device D`` the low-rank path also runs with ``device=D`` (a torch device: the
factors' products and the distances there; on CUDA the factors' M x M eigenproblems go
to the CPU), in its own child, and a second table gives CPU seconds / device seconds and
how far the device's precision matrices (as ``V^T L L^T V`` on 8 random probe vectors)
and distances lie from the CPU's. ``--no-dense`` skips the dense path.

Prints a markdown table and writes JSON (default ``reports/widths.json``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LATENT, SPREAD, NOISE, SEED = 8, 0.05, 1e-2, 0
REPO = Path(__file__).resolve().parents[1]


def write_activations(path: Path, n: int, m: int, f: int) -> np.ndarray:
    """Samples (returned) and neighbourhoods (written to ``path``, float32, row after row)."""
    rng = np.random.default_rng([SEED, f])
    w, b = rng.normal(size=(LATENT, f)) * 1.5, rng.normal(size=f) * 0.5
    t = rng.uniform(-1, 1, size=(n, LATENT))
    with open(path, "wb") as out:
        for start in range(0, n, 64):
            rows = t[start : start + 64]
            t_nb = rows[:, None, :] + SPREAD * rng.normal(size=(len(rows), m, LATENT))
            nb = np.tanh(t_nb @ w + b) + NOISE * rng.normal(size=(len(rows), m, f))
            nb.astype(np.float32).tofile(out)
    return np.tanh(t @ w + b)


class FileRows:
    """``(N, M, F)`` float32 activations in a file, read (not mapped) a slice at a time."""

    def __init__(self, path: str, n: int, m: int, f: int):
        self.path, self.shape = path, (n, m, f)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        per_row = self.shape[1] * self.shape[2]
        data = np.fromfile(self.path, dtype=np.float32, count=(stop - start) * per_row, offset=4 * start * per_row)
        return data.reshape(stop - start, self.shape[1], self.shape[2])


def rss_gib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def dense_factors(nb: FileRows, rows: int, chunk: int) -> np.ndarray:
    """Today's dense path over the first ``rows`` rows: covariances and eigendecompositions per chunk."""
    from equivtest.geometry import neighbourhood_covariances, precision_factors

    parts = [precision_factors(neighbourhood_covariances(nb[s : min(rows, s + chunk)])) for s in range(0, rows, chunk)]
    rank = max(p.shape[2] for p in parts)
    out = np.zeros((rows, nb.shape[2], rank))
    start = 0
    for p in parts:
        out[start : start + len(p), :, rank - p.shape[2] :] = p
        start += len(p)
    return out


def child(args) -> dict:
    """One measurement, in its own process: ``dense`` or ``lowrank`` at one width."""
    from equivtest.geometry import mahalanobis_sq_dense
    from equivtest.geometry.covariance import neighbourhood_precision_factors

    n, m, f = args.n, args.m, args.child_width
    nb = FileRows(args.child_file, n, m, f)
    result = {"rss_start_gib": rss_gib()}
    if args.child == "dense":
        chunk = max(1, int(args.dense_chunk_gib * 2**30 // (8 * f * f)))
        dense_factors(nb, 1, 1)  # first calls load LAPACK; not timed
        rows = min(n, args.probe_rows)
        t0 = time.perf_counter()
        factors = dense_factors(nb, rows, chunk)
        seconds = time.perf_counter() - t0
        if seconds / rows * n <= args.dense_budget_s:  # all rows fit the budget: measure them
            rows = n
            t0 = time.perf_counter()
            factors = dense_factors(nb, rows, chunk)
            seconds = time.perf_counter() - t0
        result.update(rows=rows, chunk=chunk, measured_s=seconds, factors_s=seconds * n / rows,
                      rank=int(factors.shape[2]), peak_gib=peak_gib(), extrapolated=rows < n)
        return result
    device = args.device if args.child == "lowrank-device" else None
    neighbourhood_precision_factors(nb[:2], device=device)  # first calls load LAPACK / CUDA; not timed
    t0 = time.perf_counter()
    factors = neighbourhood_precision_factors(nb, device=device)
    result.update(factors_s=time.perf_counter() - t0, rank=int(factors.shape[2]), factors_peak_gib=peak_gib())
    x = np.load(args.child_file + ".samples.npy")
    mahalanobis_sq_dense(x[:2], factors[:2], device)  # warm-up, not timed
    t0 = time.perf_counter()
    d2 = mahalanobis_sq_dense(x, factors, device)
    result.update(distances_s=time.perf_counter() - t0, peak_gib=peak_gib(), d2_finite=bool(np.isfinite(d2).all()))
    if device is not None:  # the same figures as the CPU's? (both results come back as numpy arrays)
        cpu = neighbourhood_precision_factors(nb)
        probes = np.random.default_rng(1).normal(size=(f, 8))  # V^T (L L^T) V: no F x F matrix formed

        def quad(lf):
            y = np.einsum("nfr,fk->nrk", lf, probes)
            return np.einsum("nrk,nrl->nkl", y, y)

        q_dev, q_cpu = quad(factors), quad(cpu)
        result.update(device=device, max_rel_diff_precision=float(np.max(np.abs(q_dev - q_cpu)) / np.max(np.abs(q_cpu))),
                      max_rel_diff_distances=float(np.max(np.abs(d2 - mahalanobis_sq_dense(x, cpu)))
                                                   / np.max(np.abs(d2))))
        if device.startswith("cuda"):
            import torch

            result.update(device_name=torch.cuda.get_device_name(0),
                          device_peak_gib=torch.cuda.max_memory_allocated() / 2**30)
    return result


def run_child(kind: str, width: int, path: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--child-width", str(width), "--child-file", path,
           "--n", str(args.n), "--m", str(args.m), "--dense-budget-s", str(args.dense_budget_s),
           "--dense-chunk-gib", str(args.dense_chunk_gib), "--probe-rows", str(args.probe_rows)]
    if args.device is not None:
        cmd += ["--device", args.device]
    print(f"[{time.strftime('%H:%M:%S')}] F={width}: {kind}", file=sys.stderr, flush=True)
    # the child measures the checkout this script lives in, whatever is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict], n: int, m: int) -> str:
    lines = [
        f"| F | r | dense factors s | dense peak GiB | low-rank factors s | low-rank peak GiB (factors) "
        f"| ratio (factors) | distances s | low-rank peak GiB (with distances) | ratio (factors + distances) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        d, lo = r["dense"], r["lowrank"]
        if "error" in lo:
            lines.append(f"| {r['width']} | | | | failed: {lo['error']} | | | | | |")
            continue
        if "error" in d:
            dense_s = dense_peak = ratio = ratio_all = f"failed: {d['error']}"
        else:
            how = f" (extrapolated from {d['rows']} rows)" if d["extrapolated"] else ""
            dense_s = f"{d['factors_s']:.3g}{how}"
            dense_peak = f"{d['peak_gib']:.2f}" + (f" ({d['rows']} rows)" if d["extrapolated"] else "")
            ratio = f"{d['factors_s'] / lo['factors_s']:.1f}x"
            ratio_all = f"{(d['factors_s'] + lo['distances_s']) / (lo['factors_s'] + lo['distances_s']):.1f}x"
        lines.append(
            f"| {r['width']} | {lo['rank']} | {dense_s} | {dense_peak} | {lo['factors_s']:.3g} | "
            f"{lo['factors_peak_gib']:.2f} | {ratio} | {lo['distances_s']:.3g} | {lo['peak_gib']:.2f} | {ratio_all} |"
        )
    return "\n".join(lines) + f"\n\nN = {n} rows, M = {m} neighbours; peak = the child process's ru_maxrss."


def device_table(results: list[dict], device: str) -> str:
    lines = [f"| F | CPU factors s | {device} factors s | ratio | CPU distances s | {device} distances s | ratio "
             "| ratio (both) | max rel. diff precision | distances | device peak GiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lo, dv = r["lowrank"], r.get("lowrank_device", {"error": "not run"})
        if "error" in lo or "error" in dv:
            lines.append(f"| {r['width']} | failed: {lo.get('error') or dv.get('error')} |||||||||| ")
            continue
        both = (lo["factors_s"] + lo["distances_s"]) / (dv["factors_s"] + dv["distances_s"])
        lines.append(f"| {r['width']} | {lo['factors_s']:.3g} | {dv['factors_s']:.3g} | "
                     f"{lo['factors_s'] / dv['factors_s']:.1f}x | {lo['distances_s']:.3g} | {dv['distances_s']:.3g} | "
                     f"{lo['distances_s'] / dv['distances_s']:.1f}x | {both:.1f}x | {dv['max_rel_diff_precision']:.1e} | "
                     f"{dv['max_rel_diff_distances']:.1e} | {dv.get('device_peak_gib', float('nan')):.2f} |")
    return "\n".join(lines) + "\n\nratio = CPU seconds / device seconds (above 1: the device is faster); both in one process each."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", default="96,384,768,1536,3072")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--dense-budget-s", type=float, default=2400.0,
                        help="run the dense path on all rows only if the probe says it takes at most this")
    parser.add_argument("--dense-chunk-gib", type=float, default=1.0)
    parser.add_argument("--probe-rows", type=int, default=4)
    parser.add_argument("--out", default="reports/widths.json")
    parser.add_argument("--device", default=None,
                        help="also run the low-rank path with device=D (a torch device) and compare it with the CPU's")
    parser.add_argument("--no-dense", action="store_true", help="skip the dense path")
    parser.add_argument("--child", choices=["dense", "lowrank", "lowrank-device"], help=argparse.SUPPRESS)
    parser.add_argument("--child-width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="equivtest-widths-") as tmp:
        for width in [int(v) for v in args.widths.split(",")]:
            path = str(Path(tmp) / f"nb{width}.f32")
            np.save(path + ".samples.npy", write_activations(Path(path), args.n, args.m, width))
            lowrank = run_child("lowrank", width, path, args)
            found = {"width": width, "lowrank": lowrank}
            if args.device is not None:
                found["lowrank_device"] = run_child("lowrank-device", width, path, args)
            found["dense"] = {"error": "skipped (--no-dense)"} if args.no_dense else run_child("dense", width, path, args)
            results.append(found)
            os.remove(path)
    text = table(results, args.n, args.m)
    if args.device is not None:
        text += "\n\n" + device_table(results, args.device)
    load = (load_before, os.getloadavg()[0])
    print(text)
    print(f"\nwall {time.perf_counter() - started:.0f} s; 1-minute load {load[0]:.1f} before, {load[1]:.1f} after; "
          f"{os.cpu_count()} CPUs, {platform.platform()}")
    record = {
        "schema": "equivtest.benchmark.widths", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "n": args.n, "m": args.m, "dense_budget_s": args.dense_budget_s, "dense_chunk_gib": args.dense_chunk_gib,
        "load_average_1min": load, "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "wall_s": time.perf_counter() - started, "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
