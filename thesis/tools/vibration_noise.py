"""The vibration suite at other sensor noise levels: how the task's difficulty moves its results.

    python thesis/tools/vibration_noise.py [--noise-snr-db -5 0 5] [--profile ci]

Not part of the product or the tests: it measures what the README's vibration section
quotes on the LSTM bar. For each noise level it trains (and caches) both networks at
that level, runs the suite's fits on them (``vibration.run(noise_snr_db=...)``, no
record written) and prints, per target, the network's own test accuracy and, per slice
length, the stitched network's accuracy minus it and its agreement with the target.
The suite itself runs at -5 dB; ``thesis/tools/probe_vibration.py --noise-snr-db`` gives the
ceiling of supervised slice-wise maps at the same levels.
"""

from __future__ import annotations

import argparse

from equivtest_thesis.experiments import vibration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--noise-snr-db", type=float, nargs="+", default=[-5.0, 0.0, 5.0])
    parser.add_argument("--profile", choices=tuple(vibration.PROFILES), default="ci")
    args = parser.parse_args()
    for level in args.noise_snr_db:
        outcome = vibration.run(profile=args.profile, report_dir=None, noise_snr_db=level)
        for table in outcome.tables:
            name, accuracy, agreement = (table.columns.index(c) for c in ("network", "accuracy", "agreement"))
            own, *stitched = table.rows
            cells = [f"{row[name].removeprefix('stitched, ')} {row[accuracy] - own[accuracy]:+.3f} "
                     f"(agreement {row[agreement]:.3f})" for row in stitched]
            print(f"{level:+5.1f} dB | {own[name]} {own[accuracy]:.3f} | stitched - own: {', '.join(cells)}", flush=True)


if __name__ == "__main__":
    main()
