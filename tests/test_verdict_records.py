"""A verdict made in a pytest test goes into the run records and the HTML pages, as the command
line's does: a run folder per verdict with the ladder's table, the verdict's to_dict() and a
criterion per direction; under pytest-xdist the controller prints and writes every worker's."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from equivtest.record import load_record
from equivtest.verdict_record import verdict_criteria
from tests.test_plugin import output_of, project, run  # noqa: F401

pytest_plugins = ["pytester"]

LADDER_TESTS = """
import numpy as np
import pytest
import torch
from torch import nn

import equivtest

X = np.random.default_rng(0).uniform(-1, 1, (120, 2))


def mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 3)).double().eval()


@equivtest.pair
def twins():
    return equivtest.NetworkPair(mlp(0), mlp(0), "1", "1", name="twins", task="classification")


@equivtest.pair
def strangers():
    return equivtest.NetworkPair(mlp(0), mlp(1), "1", "1", name="strangers", task="classification")


def test_twins(twins, equivtest_verdict):
    equivtest_verdict(twins, X).assert_equivalent(up_to="identity")


def test_strangers(strangers, equivtest_verdict):
    verdict = equivtest_verdict(strangers, X, rungs=("identity", "permutation", "diagonal"))
    assert verdict.kind != "equivalent"
"""


def verdict_folders(report_dir):
    return sorted(p for p in report_dir.iterdir() if "-verdict-" in p.name)


def check_records(report_dir, out: str, html: bool):
    folders = verdict_folders(report_dir)
    assert [f.name.split("-verdict-")[0] for f in folders] == ["strangers", "twins"], folders
    for folder in folders:
        files = sorted(p.name for p in folder.iterdir())
        assert files == (["record.json", "report.html"] if html else ["record.json"])
        record = load_record(folder / "record.json")  # a valid run record
        assert f"record: {folder / 'record.json'}" in out
        info = record["result"]["info"]
        ladder = info["ladder"]  # the verdict's to_dict()
        assert info["verdict"] == ladder["text"] and info["verdict_kind"] == ladder["kind"]
        [table] = record["tables"]
        assert "held-out rel. error" in table["columns"] and len(table["rows"]) == len(ladder["rows"])
        criteria = {(c["name"], c["direction"]) for c in record["result"]["criteria"]}
        assert criteria >= {(n, d) for n in ("ladder_rel_error", "ladder_null_ratio", "ladder_stitched")
                            for d in ("a->b", "b->a")}
        if html:
            page = (folder / "report.html").read_text()
            assert "<h2>Verdict</h2>" in page and ladder["text"] in page and "held-out rel. error" in page
    twins = json.loads((folders[1] / "record.json").read_text())
    assert twins["result"]["info"]["verdict_up_to"] == "identity" and twins["result"]["passed"]
    assert all(c["passed"] for c in twins["result"]["criteria"])
    assert [c["value"] for c in twins["result"]["criteria"] if c["name"] == "ladder_rel_error"] == [0.0, 0.0]
    strangers = json.loads((folders[0] / "record.json").read_text())
    assert not strangers["result"]["passed"]  # no rung reached: a criterion of the last rung tried fails


def test_each_verdict_gets_a_run_record_and_an_html_page(project, tmp_path):
    project.makepyfile(test_ladder=LADDER_TESTS)
    report_dir = tmp_path / "reports"
    result = run(project, f"--equivtest-report-dir={report_dir}", "--equivtest-html")
    result.assert_outcomes(passed=2)
    out = output_of(result)
    check_records(report_dir, out, html=True)
    assert "equivtest: twins: equivalent up to the identity" in out


def test_without_html_only_the_record_is_written_and_without_a_report_dir_nothing(project, tmp_path):
    project.makepyfile(test_ladder=LADDER_TESTS)
    report_dir = tmp_path / "reports"
    result = run(project, f"--equivtest-report-dir={report_dir}")
    result.assert_outcomes(passed=2)
    check_records(report_dir, output_of(result), html=False)
    again = run(project)
    again.assert_outcomes(passed=2)
    assert "record: " not in output_of(again) and len(verdict_folders(report_dir)) == 2


def test_a_direction_gets_the_criteria_of_its_rung_and_no_threshold_where_undecidable():
    verdict = {
        "directions": [{"direction": "a->b", "status": "passed", "rung": "identity", "reason": "ok"},
                       {"direction": "b->a", "status": "undecidable", "rung": None, "reason": "control fails"}],
        "rows": [{"direction": "a->b", "rung": "identity", "heldout_rel_error": 0.0, "null_ratio": "inf",
                  "stitched": None, "decidable": True},
                 {"direction": "b->a", "rung": "identity", "heldout_rel_error": "nan", "decidable": True},
                 {"direction": "b->a", "rung": "affine", "heldout_rel_error": 0.5, "null_ratio": 2.0,
                  "stitched": 0.4, "decidable": False}],
        "thresholds": {r: {"max_rel_error": 1e-3, "min_null_ratio": 100.0, "min_stitched": 0.99}
                       for r in ("identity", "affine")},
    }
    found = {(c.name, c.direction): c for c in verdict_criteria(verdict)}
    assert sorted(found) == [("ladder_null_ratio", "a->b"), ("ladder_null_ratio", "b->a"), ("ladder_rel_error", "a->b"),
                             ("ladder_rel_error", "b->a"), ("ladder_stitched", "b->a")]  # no stitched score a->b
    ab = found["ladder_rel_error", "a->b"]
    assert ab.threshold == 1e-3 and ab.passed and ab.detail == "passed at identity: ok"
    assert found["ladder_null_ratio", "a->b"].value == float("inf") and found["ladder_null_ratio", "a->b"].passed
    ba = found["ladder_rel_error", "b->a"]
    assert ba.value == 0.5 and ba.threshold is None and ba.passed is None  # informative, not a pass
    assert ba.detail == "undecidable at affine: control fails"
    failed = dict(verdict, directions=[verdict["directions"][0], {"direction": "b->a", "status": "failed",
                                                                  "rung": None, "reason": "no rung"}])
    failing = [c for c in verdict_criteria(failed) if c.direction == "b->a"]
    assert all(c.threshold is None for c in failing)  # the affine rung's control failed: still undecided there


def test_xdist_workers_hand_their_verdicts_to_the_controller(tmp_path, pytestconfig):
    pytest.importorskip("xdist", reason="pytest-xdist is not installed (pip install -e '.[dev]')")
    (tmp_path / "test_ladder.py").write_text(LADDER_TESTS)
    reports = tmp_path / "reports"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_ladder.py"), "-n", "2", "-p", "no:cacheprovider",
         "--equivtest-report-dir", str(reports), "--equivtest-html", "-q", "--rootdir", str(tmp_path),
         "-o", f"pythonpath={pytestconfig.rootpath}"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    check_records(reports, proc.stdout, html=True)
    assert "equivtest: twins: equivalent up to the identity" in proc.stdout  # the controller's summary
    assert "equivtest: strangers:" in proc.stdout
