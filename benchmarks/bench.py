"""Benchmark: equivtest against a faithful reference of the thesis's pipeline, in one run.

    python benchmarks/bench.py [--sizes 1d,2000,7218] [--quick] [--full] [--out FILE]

Stages (see benchmarks/README.md for what each compares):

* ``capture``        reference: one forward pass per point through a hook;
                     equivtest: ``capture_neighbourhoods`` (batched, early stop)
* ``kernel``         covariances, (pseudo-)inverses and the Mahalanobis kernel matrix;
                     reference: ``np.cov`` + ``np.linalg.pinv`` loops + datafold's
                     ``MahalanobisKernel``; equivtest: ``neighbourhood_covariances`` +
                     ``precision_factors`` + ``mahalanobis_sq_dense`` + median epsilon +
                     ``gaussian_kernel``
* ``dmaps``          reference: datafold ``DiffusionMaps`` on datafold's kernel matrix;
                     equivtest: ``diffusion_coordinates`` (which computes its distances again)
* ``interpolation``  reference: dense ``RBFInterpolator`` on raw activations; equivtest: the
                     interpolation part of ``Transformation.fit`` (``Transformation._set_fitted``)
* ``total``          reference: the sum of its stages; equivtest: measured end to end
                     (``capture_neighbourhoods`` + ``Transformation.fit`` for 1d)

Ratios are reference seconds / equivtest seconds (above 1: equivtest is faster).
Slow reference stages run once; where they would take too long they run on a subset
and are extrapolated (linearly for capture, quadratically for the kernel), and the
output says so. ``--full`` runs every reference stage for real.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse

from equivtest.capture import capture_neighbourhoods
from equivtest.geometry import (
    diffusion_coordinates,
    gaussian_kernel,
    mahalanobis_sq_dense,
    median_knn_epsilon,
    neighbourhood_covariances,
    precision_factors,
    pseudo_inverses,
)
from equivtest.transform import SideFit, Transformation

HERE = Path(__file__).resolve().parent


def _load_reference():
    """benchmarks/reference.py under a name of its own (benchmarks/ is not a package)."""
    name = "equivtest_benchmark_reference"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "reference.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class _Reference:
    """``benchmarks/reference.py``, loaded on first use: it imports datafold, which the other
    benchmarks that read ``machine_info`` from here (maps, widths on a GPU machine) do not need."""

    def __getattr__(self, name: str):
        return getattr(_load_reference(), name)


ref = _Reference()

SCHEMA = "equivtest.benchmark"
SCHEMA_VERSION = 1
DEFAULT_OUT = HERE.parent / "reports" / "benchmark.json"
AGREEMENT_TARGET = 1e-10
EXPERIMENT_4_SIZE = 7218  # the thesis's experiment 4: N=7218, d=24, 50 eigenvectors
STAGES = ("capture", "kernel", "dmaps", "interpolation", "total")


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class Profile:
    """Every size and budget of a benchmark run."""

    name: str = "default"
    sizes: tuple[str, ...] = ("1d", "2000", str(EXPERIMENT_4_SIZE))
    one_d_samples: int = 512
    one_d_neighbours: int = 1024
    one_d_eigenvectors: int = 3
    synthetic_dim: int = 24
    synthetic_neighbours: int = 100
    dmaps_eigenvectors: int = 50
    growth_sizes: tuple[int, ...] = (500, 1000, 2000, 4000)
    growth_eigenvectors: int = 10
    repeats: int = 3  # fast side: median of this many runs
    long_run_s: float = 20.0  # ... or a single run when one takes longer than this
    capture_budget_s: float = 60.0  # projected reference capture above this: extrapolate
    capture_probe: int = 32  # samples' worth of single passes timed before projecting
    kernel_budget_s: float = 120.0  # projected datafold kernel above this: extrapolate
    kernel_subset: int = 1000  # samples the datafold kernel runs on when extrapolated
    agreement_samples: int = 400  # kernel agreement checked on at most this many samples
    full: bool = False  # run every reference stage for real


DEFAULT = Profile()
QUICK = Profile(
    name="quick",
    sizes=("1d", "300:dmaps"),
    one_d_samples=64,
    one_d_neighbours=128,
    dmaps_eigenvectors=10,
    growth_sizes=(200, 400, 800, 1600),
    repeats=3,
    capture_budget_s=10.0,
    capture_probe=8,
    kernel_budget_s=10.0,
    kernel_subset=200,
    agreement_samples=100,
)


@dataclass(frozen=True)
class SizeSpec:
    """One entry of ``--sizes``: ``1d``, ``N`` (kernel only) or ``N:dmaps``."""

    token: str
    kind: str  # "1d" or "synthetic"
    n: int | None = None
    dmaps: bool = False


def parse_sizes(text: str | tuple | list) -> list[SizeSpec]:
    tokens = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for raw in tokens:
        token = raw.strip().lower()
        if not token:
            continue
        if token == "1d":
            out.append(SizeSpec("1d", "1d"))
            continue
        number, _, suffix = token.partition(":")
        try:
            n = int(number)
        except ValueError:
            raise SystemExit(f"unknown size {raw!r}: use 1d, N (kernel only) or N:dmaps, e.g. 1d,2000,7218") from None
        if n < 20 or suffix not in ("", "dmaps", "kernel"):
            raise SystemExit(f"bad size {raw!r}: N must be at least 20, the suffix :dmaps or :kernel")
        dmaps = suffix == "dmaps" or (suffix == "" and n == EXPERIMENT_4_SIZE)
        out.append(SizeSpec(token, "synthetic", n, dmaps))
    if not out:
        raise SystemExit("no sizes given")
    return out


# --------------------------------------------------------------------------- timing


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def time_once(fn: Callable):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def time_fast(fn: Callable, profile: Profile, warmup: bool = False):
    """Median of up to ``profile.repeats`` runs (one run when a run is long); the last result."""
    if warmup:
        fn()
    times, result = [], None
    for _ in range(max(1, profile.repeats)):
        dt, result = time_once(fn)
        times.append(dt)
        if dt > profile.long_run_s:
            break
    return float(np.median(times)), len(times), result


def stage_row(stage, ref_s, eq_s, eq_runs, how="measured", note="", parts=None, eq_parts=None) -> dict:
    return {
        "stage": stage,
        "reference_s": float(ref_s),
        "reference_how": how,
        "reference_note": note,
        "equivtest_s": float(eq_s),
        "equivtest_runs": int(eq_runs),
        "ratio": float(ref_s / eq_s) if eq_s > 0 else None,
        "parts": parts or {},
        "equivtest_parts": eq_parts or {},
    }


# --------------------------------------------------------------------------- data


def manifold_data(n: int, d: int = 24, m: int = 100, *, intrinsic: int = 2, delta: float = 0.05,
                  noise: float = 1e-3, seed: int = 0):
    """Activations of samples on a smooth 2-d surface in R^d, and of their neighbourhoods.

    The surface is a random two-layer tanh map of [-1, 1]^2 (like a hidden layer);
    neighbourhoods are Gaussian in the surface's coordinates (std ``delta``) plus
    isotropic noise (std ``noise``) in R^d, so every covariance has full rank with a
    condition number of a few hundred. Returns ``x (n, d)`` and ``nb (n, m, d)``.
    """
    rng = np.random.default_rng(seed)
    hidden = 32
    w1, b1 = rng.normal(size=(intrinsic, hidden)) * 2.0, rng.normal(size=hidden)
    w2, b2 = rng.normal(size=(hidden, d)) * (2.0 / np.sqrt(hidden)), rng.normal(size=d) * 0.5

    def surface(t):
        return np.tanh(np.tanh(t @ w1 + b1) @ w2 + b2)

    t = rng.uniform(-1.0, 1.0, size=(n, intrinsic))
    x = surface(t)
    nb = surface(t[:, None, :] + delta * rng.normal(size=(n, m, intrinsic)))
    nb += noise * rng.normal(size=nb.shape)
    return x, nb


# --------------------------------------------------------------------------- equivtest side


def eq_kernel(x, nb):
    """equivtest's kernel stage: covariances, precision factors, d2, median epsilon, kernel."""
    factors = precision_factors(neighbourhood_covariances(nb))
    d2 = mahalanobis_sq_dense(x, factors)
    eps = median_knn_epsilon(d2)
    return factors, d2, eps, gaussian_kernel(d2, eps)


# --------------------------------------------------------------------------- kernel agreement


def kernel_rel_diff(ours, theirs) -> dict:
    """Largest relative difference of off-diagonal kernel values (ours vs the reference's).

    Entries where both values are below the smallest normal float (underflow) are
    skipped; the count of compared entries is reported. A kernel value
    ``K = exp(-d2/eps)`` turns a relative difference ``r`` of ``d2`` into a relative
    difference of about ``r * d2/eps`` of ``K``, up to ~700 before underflow; so the
    relative difference of the distances behind the values (``max_rel_diff_d2``, from
    ``log K`` where ``K <= 0.5``) and the exponent ``d2/eps`` at the worst entry are
    reported too.
    """
    ours = np.asarray(ours.toarray() if scipy.sparse.issparse(ours) else ours)
    theirs = np.asarray(theirs.toarray() if scipy.sparse.issparse(theirs) else theirs)
    off = ~np.eye(ours.shape[0], dtype=bool)
    a, b = ours[off], theirs[off]
    mask = np.maximum(np.abs(a), np.abs(b)) >= np.finfo(np.float64).tiny
    a, b = a[mask], b[mask]
    out = {"max_rel_diff": None, "normwise_rel_diff": None, "max_rel_diff_d2": None, "worst_value": None,
           "worst_exponent": None, "compared": int(a.size), "off_diagonal": int(off.sum()), "min_value": None}
    if a.size == 0:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(a == b, 0.0, np.abs(a - b) / np.abs(b))
        far = (b <= 0.5) & (a > 0) & (b > 0)
        rel_d2 = np.abs(np.log(a[far]) - np.log(b[far])) / np.abs(np.log(b[far]))
    worst = int(np.argmax(rel))
    out.update(
        max_rel_diff=float(rel.max()),
        normwise_rel_diff=float(np.abs(a - b).max() / np.abs(b).max()),
        max_rel_diff_d2=float(rel_d2.max()) if rel_d2.size else 0.0,
        worst_value=float(b[worst]),
        worst_exponent=float(-np.log(b[worst])) if b[worst] > 0 else None,
        min_value=float(np.abs(b).min()),
    )
    return out


def kernel_agreement(x, factors, epsilon: float) -> dict:
    """equivtest's kernel at ``epsilon`` vs datafold's at ``epsilon / 2``, on the same precisions.

    ours: ``exp(-d2 / eps)``; datafold: ``exp(-d2 / (2 eps'))``: equal at ``eps = 2 eps'``.
    """
    ours = gaussian_kernel(mahalanobis_sq_dense(x, factors), epsilon)
    theirs = ref.kernel_reference(x, pseudo_inverses(factors), epsilon / 2.0)
    out = kernel_rel_diff(ours, theirs)
    out.update(samples=int(len(x)), epsilon_equivtest=float(epsilon), epsilon_datafold=float(epsilon / 2.0),
               target=AGREEMENT_TARGET,
               passed=out["max_rel_diff"] is not None and out["max_rel_diff"] <= AGREEMENT_TARGET)
    return out


# --------------------------------------------------------------------------- 1d experiment


def bench_one_d(profile: Profile, pair=None) -> dict:
    """All stages on experiment 1's networks (``equivtest_thesis.experiments.one_d``, from the package equivtest-thesis), both networks."""
    from equivtest_thesis.experiments import one_d

    if pair is None:
        log("1d: loading (or training) the networks of experiment 1")
        pair = one_d.pair()
    n, m, k = profile.one_d_samples, profile.one_d_neighbours, profile.one_d_eigenvectors
    sample_set = one_d.sampler(n, m).draw()
    inputs, nbhd = sample_set.samples, sample_set.neighbourhoods
    sides = ("a", "b")
    nets = {s: pair.network(s) for s in sides}
    layers = {s: pair.layer(s) for s in sides}
    rows, agreement, info = [], {}, {}

    # -- capture
    log(f"1d: capture, N={n}, M={m}")

    def eq_capture():
        return {s: capture_neighbourhoods(nets[s], inputs, nbhd, layers[s]) for s in sides}

    eq_s, eq_runs, acts = time_fast(eq_capture, profile, warmup=True)
    probe = min(profile.capture_probe, n)
    ref_probe_s, ref_diff = 0.0, 0.0
    probed = {}
    for s in sides:
        ref.capture_reference(nets[s], layers[s].path, inputs, nbhd[:, :4], n_samples=2)  # warm-up
        dt, probed[s] = time_once(lambda s=s: ref.capture_reference(nets[s], layers[s].path, inputs, nbhd, probe))
        ref_probe_s += dt
    projected = ref_probe_s * n / probe
    if profile.full or projected <= profile.capture_budget_s or probe == n:
        ref_s = ref_probe_s
        for s in sides:
            if probe < n:
                dt, rest = time_once(lambda s=s: ref.capture_reference(
                    nets[s], layers[s].path, inputs[probe:], nbhd[probe:]))
                ref_s += dt
                probed[s] = (np.concatenate([probed[s][0], rest[0]]), np.concatenate([probed[s][1], rest[1]]))
        how, note = "measured", f"{n * (m + 1)} single passes per network"
    else:
        ref_s = projected
        how = "extrapolated"
        note = (f"first {probe} of {n} samples timed ({probe * (m + 1)} single passes per network, "
                f"{ref_probe_s:.1f} s), scaled linearly x{n / probe:g}")
    for s in sides:
        cnt = len(probed[s][0])
        ref_diff = max(ref_diff, float(np.abs(probed[s][0] - acts[s][0][:cnt]).max()),
                       float(np.abs(probed[s][1] - acts[s][1][:cnt]).max()))
    info["capture_max_abs_diff"] = ref_diff
    rows.append(stage_row("capture", ref_s, eq_s, eq_runs, how, note))
    ref_total = ref_s
    log(f"1d: capture reference {ref_s:.2f} s ({how}), equivtest {eq_s:.4f} s")

    # -- kernel (the reference works downstream on equivtest's activations: identical, see capture_max_abs_diff)
    log("1d: kernel")

    def eq_kernels():
        return {s: eq_kernel(*acts[s]) for s in sides}

    eq_s, eq_runs, geo = time_fast(eq_kernels, profile)
    ref_kernels, parts = {}, {"covariances_s": 0.0, "pinv_s": 0.0, "datafold_kernel_s": 0.0}
    for s in sides:
        x, nb = acts[s]
        eps = geo[s][2]
        dt_c, covs = time_once(lambda: ref.covariances_reference(nb))
        dt_p, precs = time_once(lambda: ref.pseudo_inverses_reference(covs))
        dt_k, ref_kernels[s] = time_once(lambda: ref.kernel_reference(x, precs, eps / 2.0))
        parts["covariances_s"] += dt_c
        parts["pinv_s"] += dt_p
        parts["datafold_kernel_s"] += dt_k
        agreement[s] = kernel_agreement(x, geo[s][0], eps)
        agreement[s]["pipeline_max_rel_diff"] = kernel_rel_diff(geo[s][3], ref_kernels[s])["max_rel_diff"]
    ref_s = sum(parts.values())
    rows.append(stage_row("kernel", ref_s, eq_s, eq_runs, "measured", "", parts))
    ref_total += ref_s
    log(f"1d: kernel reference {ref_s:.2f} s, equivtest {eq_s:.4f} s")

    # -- diffusion maps
    log(f"1d: diffusion maps, {k} eigenvectors")

    def eq_dmaps():
        return {s: diffusion_coordinates(acts[s][0], geo[s][0], k, epsilon=geo[s][2]) for s in sides}

    eq_s, eq_runs, dcs = time_fast(eq_dmaps, profile)
    recompute_s, _, _ = time_fast(lambda: [mahalanobis_sq_dense(acts[s][0], geo[s][0]) for s in sides], profile)
    ref_s, ref_coords = 0.0, {}
    for s in sides:
        dt, (_, ref_coords[s]) = time_once(lambda s=s: ref.dmaps_reference(acts[s][0], ref_kernels[s], k))
        ref_s += dt
    rows.append(stage_row("dmaps", ref_s, eq_s, eq_runs, "measured", "",
                          eq_parts={"distances_recomputed_s": recompute_s}))
    ref_total += ref_s

    # -- interpolation
    log("1d: interpolation")
    side_fits = [SideFit(acts[s][0], dcs[s].coordinates, dcs[s].eigenvalues, dcs[s].epsilon) for s in sides]

    def eq_interp():
        t = Transformation(k)
        t._set_fitted(*side_fits)  # the interpolation part of Transformation.fit
        return t

    eq_s, eq_runs, _ = time_fast(eq_interp, profile)
    ref_s, _ = time_once(lambda: ref.interpolation_reference(acts["a"][0], ref_coords["a"], acts["b"][0], ref_coords["b"]))
    rows.append(stage_row("interpolation", ref_s, eq_s, eq_runs, "measured", ""))
    ref_total += ref_s

    # -- total: equivtest end to end
    def eq_total():
        captured = eq_capture()
        return Transformation(k).fit(*captured["a"], *captured["b"])

    eq_s, eq_runs, _ = time_fast(eq_total, profile)
    how = "extrapolated" if any(r["reference_how"] == "extrapolated" for r in rows) else "measured"
    rows.append(stage_row("total", ref_total, eq_s, eq_runs, how,
                          "reference: sum of stages; equivtest: capture_neighbourhoods + Transformation.fit"))
    return {
        "name": "1d", "kind": "1d", "n": n, "neighbours": m, "eigenvectors": k,
        "dims": {s: int(acts[s][0].shape[1]) for s in sides},
        "stages": rows, "kernel_agreement": agreement, "info": info,
    }


# --------------------------------------------------------------------------- synthetic sizes


def bench_synthetic(spec: SizeSpec, profile: Profile) -> dict:
    """Kernel (and diffusion maps) on random activations of a 2-d surface in R^d."""
    n, d, m = spec.n, profile.synthetic_dim, profile.synthetic_neighbours
    k = profile.dmaps_eigenvectors
    log(f"{spec.token}: data N={n}, d={d}, M={m}")
    x, nb = manifold_data(n, d, m, seed=n)
    rows, info = [], {}

    # -- kernel
    log(f"{spec.token}: kernel")
    eq_s, eq_runs, (factors, d2, eps, kern) = time_fast(lambda: eq_kernel(x, nb), profile)
    del d2
    parts = {}
    parts["covariances_s"], covs = time_once(lambda: ref.covariances_reference(nb))
    parts["pinv_s"], precs = time_once(lambda: ref.pseudo_inverses_reference(covs))
    probe = min(n, 200)
    probe_s, _ = time_once(lambda: ref.kernel_reference(x[:probe], precs[:probe], eps / 2.0))
    projected = probe_s * (n / probe) ** 2
    if profile.full or projected <= profile.kernel_budget_s or n <= profile.kernel_subset:
        log(f"{spec.token}: datafold kernel on all {n} samples (projected {projected:.0f} s)")
        parts["datafold_kernel_s"], ref_kern = time_once(lambda: ref.kernel_reference(x, precs, eps / 2.0))
        how, note, sub = "measured", "", n
    else:
        sub = profile.kernel_subset
        log(f"{spec.token}: datafold kernel on the first {sub} samples (all {n} projected at {projected:.0f} s)")
        dt, ref_kern = time_once(lambda: ref.kernel_reference(x[:sub], precs[:sub], eps / 2.0))
        parts["datafold_kernel_subset_s"] = dt
        parts["datafold_kernel_s"] = dt * (n / sub) ** 2
        how = "extrapolated"
        note = (f"datafold kernel timed on the first {sub} samples ({dt:.1f} s) and scaled "
                f"quadratically x{(n / sub) ** 2:.1f}; np.cov and pinv measured on all {n}")
    ref_s = parts["covariances_s"] + parts["pinv_s"] + parts["datafold_kernel_s"]
    rows.append(stage_row("kernel", ref_s, eq_s, eq_runs, how, note, parts))
    log(f"{spec.token}: kernel reference {ref_s:.1f} s ({how}), equivtest {eq_s:.3f} s")

    a = min(n, profile.agreement_samples)
    agreement = kernel_agreement(x[:a], factors[:a], eps)
    agreement["pipeline_max_rel_diff"] = kernel_rel_diff(kern[:sub, :sub], ref_kern)["max_rel_diff"]
    agreement["pipeline_samples"] = int(sub)

    # -- diffusion maps
    if spec.dmaps:
        log(f"{spec.token}: diffusion maps, {k} eigenvectors")
        eq_s, eq_runs, _ = time_fast(lambda: diffusion_coordinates(x, factors, k, epsilon=eps), profile)
        recompute_s, _ = time_once(lambda: mahalanobis_sq_dense(x, factors))
        if sub == n:
            matrix, note = ref_kern, ""
        else:
            # datafold's matrix would be ours with the diagonal dropped (agreement above).
            matrix = scipy.sparse.csr_matrix(kern)
            matrix.setdiag(0.0)
            matrix.eliminate_zeros()
            note = ("run on equivtest's kernel in datafold's sparse form (no diagonal, no underflowed "
                    "zeros: what datafold's kernel returns), as datafold's kernel was extrapolated")
        del kern
        ref_dm_s, _ = time_once(lambda: ref.dmaps_reference(x, matrix, k))
        del matrix
        rows.append(stage_row("dmaps", ref_dm_s, eq_s, eq_runs, "measured", note,
                              eq_parts={"distances_recomputed_s": recompute_s}))

        def eq_total():
            f = precision_factors(neighbourhood_covariances(nb))
            return diffusion_coordinates(x, f, k)

        eq_s, eq_runs, _ = time_fast(eq_total, profile)
        rows.append(stage_row("total", ref_s + ref_dm_s, eq_s, eq_runs, how,
                              "reference: sum of stages; equivtest: precision_factors(neighbourhood_covariances) "
                              "+ diffusion_coordinates(epsilon='median') end to end"))
    else:
        del kern
    log(f"{spec.token}: done")
    return {
        "name": spec.token, "kind": "synthetic", "n": n, "dim": d, "neighbours": m,
        "eigenvectors": k if spec.dmaps else None, "stages": rows,
        "kernel_agreement": {"x": agreement}, "info": info,
    }


# --------------------------------------------------------------------------- cost growth


def fit_exponent(ns, seconds) -> float:
    """Least-squares slope of log(seconds) against log(N)."""
    slope, _ = np.polyfit(np.log(np.asarray(ns, float)), np.log(np.asarray(seconds, float)), 1)
    return float(slope)


def bench_growth(profile: Profile) -> dict:
    """equivtest's dense kernel + diffusion maps at several N, and the fitted exponent."""
    d, m, k = profile.synthetic_dim, profile.synthetic_neighbours, profile.growth_eigenvectors
    points = []
    for n in profile.growth_sizes:
        log(f"growth: N={n}")
        x, nb = manifold_data(n, d, m, seed=n)

        def geometry():
            factors = precision_factors(neighbourhood_covariances(nb))
            return factors, diffusion_coordinates(x, factors, k)

        total_s, runs, (factors, _) = time_fast(geometry, profile)
        kernel_s, _, _ = time_fast(lambda: gaussian_kernel(mahalanobis_sq_dense(x, factors), 1.0), profile)
        points.append({"n": int(n), "kernel_dmaps_s": total_s, "kernel_matrix_s": kernel_s, "runs": runs})
    ns = [p["n"] for p in points]
    return {
        "dim": d, "neighbours": m, "eigenvectors": k, "points": points,
        "exponent_kernel_dmaps": fit_exponent(ns, [p["kernel_dmaps_s"] for p in points]),
        "exponent_kernel_matrix": fit_exponent(ns, [p["kernel_matrix_s"] for p in points]),
        "what": ("kernel_dmaps: precision_factors(neighbourhood_covariances) + diffusion_coordinates"
                 "(epsilon='median'), dense; kernel_matrix: mahalanobis_sq_dense + gaussian_kernel"),
    }


# --------------------------------------------------------------------------- machine


def machine_info() -> dict:
    versions = {}
    for name in ("equivtest", "numpy", "scipy", "torch", "datafold", "scikit-learn", "rich"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    blas = []
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: v for k, v in info.items() if k in ("user_api", "internal_api", "num_threads", "version")}
                for info in threadpool_info()]
    except ImportError:
        pass
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": cpu_model or platform.processor() or None,
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "threadpools": blas,
        "versions": versions,
    }


# --------------------------------------------------------------------------- run


def run_benchmark(profile: Profile = DEFAULT, sizes=None, *, growth: bool = True, pair=None) -> dict:
    """Run every size of ``profile`` (or ``sizes``) and the cost-growth part; the JSON-ready result."""
    specs = parse_sizes(sizes if sizes is not None else profile.sizes)
    started = time.perf_counter()
    load_before = _load_average()
    results = []
    for spec in specs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if spec.kind == "1d":
                results.append(bench_one_d(profile, pair=pair))
            else:
                results.append(bench_synthetic(spec, profile))
    growth_result = bench_growth(profile) if growth else None
    agreements = [a["max_rel_diff"] for r in results for a in r["kernel_agreement"].values()]
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "profile": asdict(profile),
        "sizes": [s.token for s in specs],
        "machine": machine_info(),
        "results": results,
        "kernel_agreement": {
            "max_rel_diff": max((a for a in agreements if a is not None), default=None),
            "target": AGREEMENT_TARGET,
            "passed": all(a is not None and a <= AGREEMENT_TARGET for a in agreements),
        },
        "growth": growth_result,
        "ratio": "reference seconds / equivtest seconds (above 1: equivtest is faster)",
        "wall_s": time.perf_counter() - started,
        # Other processes on the machine skew timings: the 1-minute load before and after.
        "load_average_1min": {"before": load_before, "after": _load_average()},
    }


def _load_average():
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def write_json(result: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(path)
    return path


def _fmt_s(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:,.0f}"
    if seconds >= 1:
        return f"{seconds:.2f}"
    if seconds >= 1e-3:
        return f"{seconds:.4f}"
    return f"{seconds:.2e}"


def _fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def render(result: dict, console=None) -> None:
    """The table of stages, the kernel agreement and the growth exponents (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = console or (Console() if sys.stdout.isatty() else Console(width=120))
    mach = result["machine"]
    table = Table(title=f"equivtest vs the thesis pipeline ({result['profile']['name']} profile)")
    for col, justify in (("size", "left"), ("stage", "left"), ("reference s", "right"), ("", "left"),
                         ("equivtest s", "right"), ("ratio", "right")):
        table.add_column(col, justify=justify)
    notes = []
    for res in result["results"]:
        if res["kind"] == "1d":
            label = f"1d N={res['n']} M={res['neighbours']} (A+B)"
        else:
            label = f"N={res['n']} d={res['dim']}" + (f" k={res['eigenvectors']}" if res["eigenvectors"] else "")
        for i, row in enumerate(res["stages"]):
            mark = ""
            if row["reference_how"] == "extrapolated":
                mark = "extrapolated"
            note = row["reference_note"] if row["stage"] != "total" else ""
            recomputed = row.get("equivtest_parts", {}).get("distances_recomputed_s")
            if recomputed is not None:
                note = (note + "; " if note else "") + (
                    f"equivtest's diffusion_coordinates computes the distances again (about "
                    f"{_fmt_s(recomputed)} s of its {_fmt_s(row['equivtest_s'])} s)")
            if note:
                notes.append(f"{label}, {row['stage']}: {note}")
                mark = (mark + f" [{len(notes)}]").strip()
            ratio = row["ratio"]
            table.add_row(label if i == 0 else "", row["stage"], _fmt_s(row["reference_s"]), mark,
                          _fmt_s(row["equivtest_s"]), f"{ratio:,.1f}x" if ratio is not None else "-",
                          end_section=i == len(res["stages"]) - 1)
    console.print(table)
    for i, note in enumerate(notes, 1):
        console.print(f"  [{i}] {note}", highlight=False)
    console.print("ratio = reference seconds / equivtest seconds (above 1: equivtest is faster)", highlight=False)
    for res in result["results"]:
        for side, agr in res["kernel_agreement"].items():
            where = f"{res['name']}" + (f" network {side}" if res["kind"] == "1d" else "")
            mr = agr["max_rel_diff"]
            console.print(
                f"kernel agreement {where}: max rel diff {_fmt(mr, '.2e')} over {agr['compared']} off-diagonal values "
                f"of {agr['samples']} samples (target <= {agr['target']:.0e}: {'ok' if agr['passed'] else 'MISSED'}; "
                f"worst at K={_fmt(agr['worst_value'], '.1e')}, d2/eps={_fmt(agr['worst_exponent'], '.0f')}); "
                f"distances behind them: max rel diff {_fmt(agr['max_rel_diff_d2'], '.2e')}; reference pipeline "
                f"(np.cov/pinv precisions): {_fmt(agr['pipeline_max_rel_diff'], '.2e')}",
                highlight=False,
            )
    g = result.get("growth")
    if g:
        pts = ", ".join(f"N={p['n']}: {_fmt_s(p['kernel_dmaps_s'])} s" for p in g["points"])
        console.print(
            f"growth (equivtest dense kernel + dmaps, d={g['dim']}, k={g['eigenvectors']}): {pts}; "
            f"time ~ N^{g['exponent_kernel_dmaps']:.2f} (kernel matrix alone: N^{g['exponent_kernel_matrix']:.2f})",
            highlight=False,
        )
    console.print(
        f"machine: {mach['cpus_usable']} usable of {mach['cpu_count']} CPUs ({mach['cpu_model']}), "
        f"{mach['memory_gib']} GiB, {mach['platform']}; wall {result['wall_s']:.0f} s; 1-min load average "
        f"{result['load_average_1min']['before']} before, {result['load_average_1min']['after']} after",
        highlight=False,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", help="comma list of 1d, N (kernel only) and N:dmaps; 7218 includes diffusion "
                        "maps (experiment 4). Default 1d,2000,7218 (quick: 1d,300:dmaps)")
    parser.add_argument("--quick", action="store_true", help="small, fast profile (< 60 s) for CI")
    parser.add_argument("--full", action="store_true", help="run every reference stage for real (no extrapolation)")
    parser.add_argument("--repeats", type=int, help="runs of each equivtest stage (median); default 3")
    parser.add_argument("--growth-sizes", help="comma list of N for the cost-growth fit (default 500,1000,2000,4000)")
    parser.add_argument("--no-growth", action="store_true", help="skip the cost-growth part")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 when the kernel agreement misses its target (otherwise only reported)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    profile = QUICK if args.quick else DEFAULT
    if args.full:
        profile = replace(profile, full=True)
    if args.repeats:
        profile = replace(profile, repeats=args.repeats)
    if args.growth_sizes:
        sizes = tuple(int(s) for s in args.growth_sizes.split(",") if s.strip())
        if len(sizes) < 2:
            parser.error("--growth-sizes needs at least two sizes")
        profile = replace(profile, growth_sizes=sizes)
    result = run_benchmark(profile, args.sizes, growth=not args.no_growth)
    render(result)
    path = write_json(result, args.out)
    print(f"wrote {path}")
    return 1 if args.strict and not result["kernel_agreement"]["passed"] else 0


if __name__ == "__main__":
    sys.exit(main())
