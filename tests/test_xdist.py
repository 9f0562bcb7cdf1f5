"""pytest-xdist: two workers fit and record in parallel without writing the same file."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install -e '.[dev]')")

SUITE = """
import numpy as np
import pytest
import equivtest
from equivtest import FitConfig, GaussianNeighbourhood, GridPoints, NetworkPair, Sampler
from tests._nets import tanh_mlp


@equivtest.pair
def pair():
    return NetworkPair(tanh_mlp(0), tanh_mlp(1), "act2", "act2", name="xd")


@pytest.mark.parametrize("seed", range(6))
def test_fit(pair, equivtest_fit, seed):
    sampler = Sampler(GridPoints(-1.0, 1.0, 64), GaussianNeighbourhood(32, 0.05), seed=seed)
    fitted = equivtest_fit(pair, sampler, FitConfig())
    fitted.evaluate(np.linspace(-0.9, 0.9, 50)[:, None]).assert_equivalent(activation_mse=1e-2)
"""


def test_two_workers_write_distinct_complete_records(tmp_path, pytestconfig):
    (tmp_path / "test_parallel.py").write_text(SUITE)
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_parallel.py"), "-n", "2", "-p", "no:cacheprovider",
         "--equivtest-report-dir", str(reports), "--equivtest-html", "-q",
         "--rootdir", str(tmp_path), "-o", f"pythonpath={pytestconfig.rootpath}"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    folders = sorted(p for p in reports.iterdir())
    assert len(folders) == 6 and len({p.name for p in folders}) == 6
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["plots.npz", "record.json", "report.html", "transformation.npz"]
        assert json.loads((folder / "record.json").read_text())["result"]["passed"]
    assert proc.stdout.count("record: ") == 6  # the controller's summary lists every worker's records
    assert "equivtest: equivalence criteria" in proc.stdout


THREADS = """
import os
import torch


def test_threads():
    cores = len(os.sched_getaffinity(0))
    assert torch.get_num_threads() == max(1, cores // 2), torch.get_num_threads()
"""


def test_each_xdist_worker_gets_its_share_of_the_cores(tmp_path, pytestconfig):
    # two workers of all-core torch each would oversubscribe the machine (see the plugin)
    (tmp_path / "test_threads.py").write_text(THREADS)
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_threads.py"), "-n", "2", "-p", "no:cacheprovider", "-q",
         "--rootdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
