"""Benchmark: several slice lengths from one capture against a capture per slice length.

    python benchmarks/slices.py [--samples 100] [--neighbourhood 128] [--repeats 3] [--out FILE]

On the vibration suite's networks and layers (trained on first use, about 2 min, then
cached in ``$EQUIVTEST_CACHE``) and with its fit settings, it fits p = 1, 2, 10, 25 two
ways, alternately, ``--repeats`` times each:

* reference: ``fit_pair`` at each p, which runs both networks on every sample and
  neighbourhood point once per p;
* equivtest: ``fit_slice_lengths``, which runs them once and cuts each p's rows.

It prints the median seconds of each and their ratio (reference / equivtest, above 1:
the one capture is faster), and checks that both ways give the same fits (activations
equal, predictions to 1e-9). ``--samples`` and ``--neighbourhood`` set the size; the
suite's full profile is 650 and 1024.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from equivtest.engine import fit_pair, fit_slice_lengths
from equivtest_thesis.experiments import vibration

SLICE_LENGTHS = (1, 2, 10, 25)


def both_ways(lstm, transformer, windows, samples: int, neighbourhood: int):
    """The two ways to fit every slice length, as functions of no arguments."""
    profile = {**vibration.PROFILES["ci"], "samples": samples, "neighbourhood": neighbourhood}
    sampler = vibration.sampler(windows, samples, neighbourhood)
    config = vibration.config(profile)

    def per_p():
        return [fit_pair(vibration.pair(p, lstm, transformer), sampler, config) for p in SLICE_LENGTHS]

    def once():
        return list(fit_slice_lengths(vibration.pair(None, lstm, transformer), sampler, SLICE_LENGTHS, config))

    return per_p, once


def same_fits(ours, theirs) -> float:
    """Largest relative gap of the A -> B predictions on the fit rows; activations must be equal."""
    worst = 0.0
    for mine, ref in zip(ours, theirs):
        for side in ("a", "b"):
            for x, y in zip(mine.activations[side], ref.activations[side]):
                if not np.array_equal(x, y):
                    raise RuntimeError(f"activations differ at slice length {mine.pair.metadata['slice_length']}")
        x = mine.activations["a"][0]
        got, want = (f.transformation.predict(x, to="b") for f in (mine, ref))
        worst = max(worst, float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-300)))
    return worst


def measure(lstm, transformer, windows, samples: int, neighbourhood: int, repeats: int) -> dict:
    """Both ways, alternately, ``repeats`` times each: their seconds, ratios and agreement."""
    per_p, once = both_ways(lstm, transformer, windows, samples, neighbourhood)
    times = {"reference": [], "equivtest": []}
    fits = {}
    for repeat in range(repeats):
        for name, fn in (("reference", per_p), ("equivtest", once)):  # alternated: drift hits both
            fits.pop(name, None)
            t = time.perf_counter()
            fits[name] = fn()
            times[name].append(time.perf_counter() - t)
            print(f"[{repeat + 1}/{repeats}] {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
    ratios = [r / e for r, e in zip(times["reference"], times["equivtest"])]
    return {
        "samples": samples, "neighbourhood": neighbourhood, "slice_lengths": list(SLICE_LENGTHS),
        "reference_s": times["reference"], "equivtest_s": times["equivtest"],
        "median_reference_s": float(np.median(times["reference"])),
        "median_equivtest_s": float(np.median(times["equivtest"])),
        "ratios": ratios, "median_ratio": float(np.median(ratios)),
        "prediction_gap": same_fits(fits["equivtest"], fits["reference"]),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--neighbourhood", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    lstm, transformer, info = vibration.networks()
    result = measure(lstm, transformer, info["splits"].val.x, args.samples, args.neighbourhood, args.repeats)
    ratios, gap = result["ratios"], result["prediction_gap"]
    print(f"{args.samples} samples x {args.neighbourhood} neighbours, p = {', '.join(map(str, SLICE_LENGTHS))}: "
          f"a capture per p {result['median_reference_s']:.2f} s, one capture {result['median_equivtest_s']:.2f} s "
          f"(medians of {args.repeats}); ratio {result['median_ratio']:.2f} (pairwise "
          f"{min(ratios):.2f}-{max(ratios):.2f}); predictions equal to {gap:.1e} relative")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
