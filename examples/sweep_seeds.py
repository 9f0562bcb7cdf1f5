"""Worked example: two independently trained seeds of a small network, swept across all block pairs.

```bash
python examples/sweep_seeds.py                   # seeds 0 and 1, all 4 x 4 block pairs
python examples/sweep_seeds.py --rungs identity,permutation,orthogonal,diagonal,affine,nonlinear --up-to nonlinear
```

The network (trained here, deterministically, in seconds): a block MLP on scikit-learn's bundled
8x8 digits (``sklearn.datasets.load_digits``, 1,797 images, nothing downloaded): a stem
``Linear(64, 32)`` + ReLU, four blocks ``Linear(32, 32)`` + ReLU (``blocks.0`` .. ``blocks.3``,
what ``equivtest.sweep.blocks`` finds), a head ``Linear(32, 10)``. Data split per class with a
fixed permutation (``default_rng(0)``): 70% train, 30% test; pixels / 16, standardised with the
training mean and deviation. Training: Adam (lr 1e-3), batches of 32 in an order drawn from the
seed, 60 epochs, cross-entropy, one thread; the initial weights come from ``torch.manual_seed(seed)``.
The two networks differ only in the seed.

The sweep: every pair of blocks (``mode="all"``), the sweep's default ladder identity .. affine
and thresholds (held-out rel. error <= 1e-3, null ratio >= 100, stitched agreement >= 0.99), the
classification task (stitched agreement = the fraction of held-out images whose arg-max class
through the stitched network equals the target network's). Inputs: the 539 test images (one row
each; 25% held out by the sweep). Per block of A the table shows its best match in B.

The check: the two networks' own outputs: their test accuracies, the fraction of test images
where their predicted classes agree, the relative error of their logits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sweeps  # noqa: E402

WIDTH, DEPTH, EPOCHS, LR, BATCH = 32, 4, 60, 1e-3, 32


class BlockMLP(nn.Module):
    def __init__(self, width: int = WIDTH, depth: int = DEPTH):
        super().__init__()
        self.stem = nn.Sequential(nn.Linear(64, width), nn.ReLU())
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(width, width), nn.ReLU()) for _ in range(depth)])
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)))


def digits():
    """(x_train, y_train, x_test, y_test), float32, split 70/30 per class with a fixed permutation."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x, y = data.data.astype(np.float64) / 16.0, data.target
    rng = np.random.default_rng(0)
    train, test = [], []
    for label in range(10):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        cut = int(round(0.7 * len(idx)))
        train.extend(idx[:cut])
        test.extend(idx[cut:])
    train, test = np.sort(train), np.sort(test)
    mean, std = x[train].mean(0), x[train].std(0) + 1e-6
    x = ((x - mean) / std).astype(np.float32)
    return x[train], y[train], x[test], y[test]


def train(seed: int, data) -> tuple[BlockMLP, dict]:
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    net = BlockMLP()
    opt = torch.optim.Adam(net.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    xt, yt = torch.as_tensor(x_train), torch.as_tensor(y_train)
    start = time.perf_counter()
    for _epoch in range(EPOCHS):
        order = torch.randperm(len(xt), generator=gen)
        for k in range(0, len(xt), BATCH):
            idx = order[k : k + BATCH]
            loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(torch.as_tensor(x_test)).argmax(1).numpy() == y_test).mean())
    return net, {"seed": seed, "test_accuracy": accuracy, "train_seconds": time.perf_counter() - start}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs=2, default=(0, 1))
    parser.add_argument("--up-to", default="affine")
    parser.add_argument("--rungs", default=None,
                        help="comma-separated rungs, rigid first (default: the sweep's ladder, identity .. affine)")
    parser.add_argument("--report-dir", type=Path, default=Path("reports/examples"))
    args = parser.parse_args(argv)

    import equivtest
    from equivtest.sweep import blocks

    _sweeps.one_thread()
    print(f"load average at start: {_sweeps.load()} ({torch.get_num_threads()} torch thread)")
    data = digits()
    (net_a, info_a), (net_b, info_b) = (train(s, data) for s in args.seeds)
    for info in (info_a, info_b):
        print(f"seed {info['seed']}: test accuracy {info['test_accuracy']:.4f} ({len(data[3])} images), "
              f"trained in {info['train_seconds']:.1f}s")
    x_test = data[2]
    with torch.no_grad():
        la, lb = (n(torch.as_tensor(x_test)).numpy() for n in (net_a, net_b))
    checks = {"networks": [info_a, info_b], "test_images": len(x_test),
              "answer_agreement": float((la.argmax(1) == lb.argmax(1)).mean()),
              "logits_rel_error": float(np.linalg.norm(lb - la) / np.linalg.norm(la))}

    names = (f"seed{args.seeds[0]}", f"seed{args.seeds[1]}")
    layers = blocks(net_a)
    pair = equivtest.NetworkPair(net_a, net_b, layers[0], layers[0], name=f"digits-{names[0]}-{names[1]}", names=names,
                                 task="classification")
    result, timings = _sweeps.run_sweep(pair, x_test, layers, blocks(net_b), mode="all", up_to=args.up_to,
                                        rungs=None if args.rungs is None else args.rungs.split(","))
    output_equal = checks["answer_agreement"] == 1.0 and checks["logits_rel_error"] <= dict(result.thresholds)["identity"].max_rel_error
    checks["outputs_equivalent_at_identity_threshold"] = output_equal
    checks["story"] = _sweeps.consistency(result, output_equal)

    print(f"\n{names[0]} vs {names[1]}: {len(x_test)} test images (rows); mode {result.mode}, {len(result.cells)} cells, "
          f"rungs {', '.join(result.rungs)}, up_to {result.up_to}")
    print("per block of A, its best match in B:")
    _sweeps.print_cells(result)
    print("\nthe whole grid (verdict, worse held-out rel. error of the two directions, CKA):")
    rel, cka = result.grid("rel_error"), result.grid("cka")
    print(f"{'':<12}" + "".join(f"{'B ' + name:>28}" for name in result.layers_b))
    for row in range(len(result.layers_a)):
        cells = {c.j: c for c in result.cells if c.i == row}
        print(f"{'A ' + result.layers_a[row]:<12}" + "".join(
            f"{(cells[j].up_to or cells[j].kind)[:14]:>16} {rel[row, j]:5.3f} {cka[row, j]:5.3f}"
            for j in range(len(result.layers_b))))
    diag = [c for c in result.cells if c.i == c.j]
    print("the same block in both (the diagonal): " + "; ".join(
        f"{c.layer_a} {c.up_to or c.kind}, rel. error {c.figure('rel_error'):.3f}, CKA {c.cka:.3f}" for c in diag))
    print(f"the networks' own outputs: predicted classes agree on {checks['answer_agreement']:.4f} of "
          f"{len(x_test)} test images; logits rel. error {checks['logits_rel_error']:.4g}")
    print(f"story: {checks['story']}")
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + f"; load average at end: {_sweeps.load()}")
    options = {"seeds": list(args.seeds), "mode": "all", "up_to": args.up_to, "rungs": list(result.rungs), "rows": len(x_test), "layers": layers}
    _sweeps.write_run(pair, result, timings, args.report_dir, checks, options)
    return {"result": result, "checks": checks}


if __name__ == "__main__":
    main()
