"""Scale path: fit a transformation on N samples of 64 features, neighbourhoods of 64.

The activations are synthetic but shaped like a network layer's: a 2-d latent manifold
(the "input"), pushed through two random tanh layers to 64 features, differently for
networks A and B. Neighbourhoods are generated lazily, sample by sample from a seed,
so the (N, 64, 64) neighbourhood activations (3.3 GB at N = 10^5) never exist at once.

    python benchmarks/scale.py --n 100000            # the issue's size
    /usr/bin/time -v python benchmarks/scale.py --n 100000   # peak memory (Maximum resident set size)

Prints the time of each stage and the activation MSE of the fitted map on held-out
points; ``--dense-check`` also fits the dense path (same N) and compares criteria.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np

from equivtest.transform import Transformation

FEATURES, NEIGHBOURS, LATENT = 64, 64, 2


class Layer:
    """latent (n, 2) -> tanh(W2 tanh(W1 t + b1) + b2), 64 features."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self.w1, self.b1 = rng.normal(size=(LATENT, 32)) * 1.5, rng.normal(size=32) * 0.5
        self.w2, self.b2 = rng.normal(size=(32, FEATURES)) / np.sqrt(32), rng.normal(size=FEATURES) * 0.2

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return np.tanh(np.tanh(t @ self.w1 + self.b1) @ self.w2 + self.b2)


class LazyNeighbourhoods:
    """Neighbourhood activations (N, M, F), computed for the rows asked for."""

    def __init__(self, latent: np.ndarray, layer: Layer, std: float, seed: int):
        self.latent, self.layer, self.std, self.seed = latent, layer, std, seed
        self.shape = (len(latent), NEIGHBOURS, FEATURES)

    def __len__(self) -> int:
        return len(self.latent)

    def __getitem__(self, rows: slice) -> np.ndarray:
        idx = np.arange(len(self.latent))[rows]
        rng = np.random.default_rng([self.seed, int(idx[0]) if len(idx) else 0])
        t = self.latent[idx][:, None, :] + self.std * rng.standard_normal((len(idx), NEIGHBOURS, LATENT))
        return self.layer(t.reshape(-1, LATENT)).reshape(len(idx), NEIGHBOURS, FEATURES)


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run(n: int, k_neighbours: int, rbf_neighbors: int | None, n_eigenvectors: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    latent = rng.uniform(0, 1, size=(n, LATENT))
    a, b = Layer(1), Layer(2)
    sa, sb = a(latent), b(latent)
    na, nb = LazyNeighbourhoods(latent, a, 0.01, 11), LazyNeighbourhoods(latent, b, 0.01, 11)
    t0 = time.perf_counter()
    def stage(message: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f} s] N={n}: {message}", file=sys.stderr, flush=True)

    t = Transformation(n_eigenvectors, k_neighbours=k_neighbours, rbf_neighbors=rbf_neighbors).fit(
        sa, na, sb, nb, stage=stage
    )
    fit_s = time.perf_counter() - t0
    test = np.random.default_rng(seed + 1).uniform(0.05, 0.95, size=(2000, LATENT))
    t1 = time.perf_counter()
    mse = {
        "a->b": float(np.mean((t.predict(a(test), to="b") - b(test)) ** 2)),
        "b->a": float(np.mean((t.predict(b(test), to="a") - a(test)) ** 2)),
    }
    return {
        "n": n, "features": FEATURES, "neighbours": NEIGHBOURS, "k_neighbours": k_neighbours,
        "rbf_neighbors": rbf_neighbors, "n_eigenvectors": n_eigenvectors,
        "fit_s": fit_s, "predict_2000_s": time.perf_counter() - t1,
        "activation_mse": mse, "relative_mse": {k: v / float(b(test).var() if k == "a->b" else a(test).var()) for k, v in mse.items()},
        "epsilon": {"a": t.side_a_.epsilon, "b": t.side_b_.epsilon},
        "peak_rss_gib": peak_rss_gib(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--k-neighbours", type=int, default=15)
    parser.add_argument("--rbf-neighbors", type=int, default=64)
    parser.add_argument("--eigenvectors", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dense-check", action="store_true", help="also fit the dense path and compare")
    parser.add_argument("--out", default=None, help="write the result as JSON here")
    parser.add_argument("--growth", default=None, help="comma-separated sizes: fit time against N, and its exponent")
    args = parser.parse_args(argv)
    if args.growth:
        sizes = [int(v) for v in args.growth.split(",")]
        runs = [run(n, args.k_neighbours, args.rbf_neighbors, args.eigenvectors, args.seed) for n in sizes]
        slope = float(np.polyfit(np.log(sizes), np.log([r["fit_s"] for r in runs]), 1)[0])
        result = {"growth": {"sizes": sizes, "fit_s": [r["fit_s"] for r in runs], "exponent": slope}}
        print(json.dumps(result, indent=2))
        if args.out:
            with open(args.out, "w") as handle:
                handle.write(json.dumps(result, indent=2))
        return 0
    result = {"scale": run(args.n, args.k_neighbours, args.rbf_neighbors, args.eigenvectors, args.seed)}
    if args.dense_check:
        result["dense"] = run(args.n, None, None, args.eigenvectors, args.seed)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
