"""``equivtest run FILE::NAME``: a user's own pair, fitted and reported like a suite."""

from __future__ import annotations

import json
import textwrap

import pytest
from typer.testing import CliRunner

from equivtest.cli import app

USER_FILE = '''
import numpy as np
import torch
from torch import nn

import equivtest


def mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1)).double().eval()


@equivtest.pair(
    data=equivtest.Sampler(equivtest.GridPoints(-1.0, 1.0, 64), equivtest.GaussianNeighbourhood(32, 0.05)),
    test_inputs=lambda: np.linspace(-0.9, 0.9, 21)[:, None],
    config=equivtest.FitConfig(n_eigenvectors=3),
    thresholds={"activation_mse": 1e-4},
    ladder_inputs=lambda: np.random.default_rng(0).uniform(-1, 1, (200, 1)),
)
def my_pair():
    net = mlp(0)
    return equivtest.NetworkPair(net, net, "1", "1", name="mine")


@equivtest.pair(data=None)
def no_data():
    return equivtest.NetworkPair(mlp(0), mlp(1), "1", "1")


def plain():
    return None
'''


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "test_mine.py"
    path.write_text(textwrap.dedent(USER_FILE))
    return path


def test_a_users_pair_runs_from_the_command_line_with_record_and_report(user_file, tmp_path):
    reports = tmp_path / "reports"
    result = CliRunner().invoke(app, ["run", f"{user_file}::my_pair", "--report-dir", str(reports)])
    assert result.exit_code == 0, result.output
    assert "all criteria met" in result.output and "activation_mse" in result.output
    (folder,) = list(reports.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["plots.npz", "record.json", "report.html", "transformation.npz"]
    record = json.loads((folder / "record.json").read_text())
    assert record["pair"]["name"] == "mine"
    asserted = {(c["name"], c["direction"]): c for c in record["result"]["criteria"]}
    assert asserted["activation_mse", "a->b"]["threshold"] == 1e-4
    # the ladder's verdict beside it: the network against itself is equivalent up to the identity
    assert record["result"]["info"]["verdict_up_to"] == "identity"
    assert record["result"]["info"]["ladder"]["up_to"] == "identity"  # the verdict's to_dict(), diagnostics and all
    assert record["result"]["info"]["ladder"]["diagnostics"]["width_a"] > 0
    (ladder,) = record["tables"]
    assert ladder["columns"][:5] == ["direction", "rung", "held-out rel. error", "null rel. error", "null ratio"]
    assert {row[1] for row in ladder["rows"]} == {"identity"}
    assert "Ladder of maps" in result.output
    html = (folder / "report.html").read_text()
    assert "Ladder of maps" in html and "held-out rel. error" in html
    assert "<h2>Verdict</h2>" in html and "equivalent up to the identity" in html


def test_bad_targets_are_clear_errors(user_file, tmp_path):
    runner = CliRunner()
    for target, message in (
        (f"{user_file}::nothing", "its pairs: my_pair, no_data"),
        (f"{user_file}::plain", "not declared with @equivtest.pair"),
        (f"{user_file}::no_data", "has no data"),
        (f"{tmp_path / 'missing.py'}::x", "no file"),
        ("no_such_module_here:x", "cannot import module"),
    ):
        result = runner.invoke(app, ["run", target, "--no-record"])
        assert result.exit_code == 2, (target, result.output)
        assert message in " ".join(result.output.split()), (target, result.output)


def test_list_says_how_to_run_your_own_pair():
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0
    assert "equivtest run path/to/file.py::pair_name" in " ".join(result.output.split())
