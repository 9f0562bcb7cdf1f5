"""Where a batch of small symmetric eigenproblems is fastest: torch on the CPU or on a GPU.

    python benchmarks/eigh_device.py [--device cuda] [--m 64] [--batches 21,85,500]

The low-rank geometry (``neighbourhood_spectra`` where ``F >= M``) solves one ``M x M``
float64 eigenproblem per neighbourhood (``M`` = 64 by default), in chunks of rows. This
times ``torch.linalg.eigh`` on such batches on the CPU and on ``--device`` (after a
warm-up, synchronised, median of 5), and the device's two products of the same chunk
at ``F`` = 768 and 3,072 (``X X^T`` and ``X^T V``) for scale. Prints one line per case.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def timed(fn, device, repeats: int = 5) -> float:
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--m", type=int, default=64)
    parser.add_argument("--batches", default="21,85,500")
    args = parser.parse_args(argv)
    dev, cpu = torch.device(args.device), torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    for n in [int(b) for b in args.batches.split(",")]:
        x = torch.randn(n, args.m, 768, generator=gen, dtype=torch.float64)
        gram = x @ x.transpose(1, 2)
        on_dev = gram.to(dev)
        t_cpu = timed(lambda: torch.linalg.eigh(gram), cpu)
        t_dev = timed(lambda: torch.linalg.eigh(on_dev), dev)
        t_round = timed(lambda: [t.to(dev) for t in torch.linalg.eigh(on_dev.cpu())], dev)
        line = (f"batch {n:5d} of {args.m}x{args.m}: eigh cpu {t_cpu * 1e3:8.2f} ms, {args.device} {t_dev * 1e3:8.2f} ms, "
                f"via the cpu from {args.device} {t_round * 1e3:8.2f} ms")
        for f in (768, 3072):
            xf = torch.randn(n, args.m, f, generator=gen, dtype=torch.float64).to(dev)
            v = torch.randn(n, args.m, args.m - 1, generator=gen, dtype=torch.float64).to(dev)
            t_mm = timed(lambda: (xf @ xf.transpose(1, 2), xf.transpose(1, 2) @ v), dev)
            line += f"; F={f} products {args.device} {t_mm * 1e3:7.2f} ms"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
