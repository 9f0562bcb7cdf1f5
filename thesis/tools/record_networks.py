"""Add the networks a suite's baselines are recorded with to ``networks.json`` beside them.

    python thesis/tools/record_networks.py vibration

Run it right after recording the suite's baselines (``pytest thesis/suites/test_vibration.py
-k baseline --equivtest-force-regen``), on the same machine and network cache. It adds the
fingerprints of the suite's trained networks (``equivtest_thesis.zoo.cache.fingerprint``)
and the CPU that trained them to ``thesis/suites/test_<suite>/networks.json``. The suite's
baselines are named by those fingerprints, one set per set of networks; its baseline tests
are skipped, with the reason, on networks the file does not list (another CPU trains other
weights: docs/suites/vibration.md).
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch

from equivtest._io import atomic_write_bytes
from equivtest_thesis.zoo.cache import fingerprint

SUITES = Path(__file__).resolve().parents[1] / "suites"


def cpu() -> str:
    """The processor and the SIMD kernels torch runs on it (what decides the trained weights)."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if line.startswith("model name")]
        model = names[0] if names else model
    return f"{model}, {platform.machine()}, torch {torch.__version__} kernels {torch.backends.cpu.get_cpu_capability()}"


def vibration_fingerprints() -> dict:
    from equivtest_thesis.zoo.vibration import vibration_networks

    lstm, transformer, _ = vibration_networks()
    return {"lstm": fingerprint(lstm), "transformer": fingerprint(transformer)}


NETWORKS = {"vibration": vibration_fingerprints}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", choices=sorted(NETWORKS))
    args = parser.parse_args(argv)
    path = SUITES / f"test_{args.suite}" / "networks.json"
    known = json.loads(path.read_text()) if path.exists() else {"recorded": []}
    entry = {"fingerprints": NETWORKS[args.suite](), "cpu": cpu()}
    if any(r["fingerprints"] == entry["fingerprints"] for r in known["recorded"]):
        print(f"{path} already lists {entry['fingerprints']}")
        return 0
    known["recorded"].append(entry)
    atomic_write_bytes(path, (json.dumps(known, indent=2) + "\n").encode())
    print(f"added to {path}: {entry}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
