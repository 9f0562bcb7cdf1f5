"""The ``equivtest`` command (``equivtest.cli.app``) on the thesis's 1d suite, run in process with Typer's CliRunner.

The suite comes from this package's ``equivtest.suites`` entry points; the command's
behaviour without the thesis is tested in tests/test_cli.py. ``equivtest run 1d`` trains
the two networks of experiment 1 on first use and caches them under ``$EQUIVTEST_CACHE``;
afterwards a run is about a second.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import equivtest
from equivtest.cli import app
from equivtest.suites import get as get_suite
from equivtest_thesis.experiments import one_d

runner = CliRunner()


def criteria_rows(output: str, criterion: str) -> dict[str, str]:
    """Table rows of ``criterion`` by direction (criterion and direction never wrap)."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 4 and cells[2] == criterion:
            rows[cells[3]] = line
    return rows


@pytest.fixture(scope="module")
def run_1d(tmp_path_factory):
    """``equivtest run 1d --report-dir DIR`` once for the module: (result, DIR)."""
    report_dir = tmp_path_factory.mktemp("cli-run") / "reports"
    result = runner.invoke(app, ["run", "1d", "--report-dir", str(report_dir)])
    return result, report_dir


def test_list_names_the_1d_suite():
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^1d\s+Experiment 1", result.output, re.M), result.output
    assert get_suite("1d").title in result.output


def test_run_1d_exits_0_and_prints_the_criteria(run_1d):
    result, _ = run_1d
    assert result.exit_code == 0, result.output
    assert get_suite("1d").title in result.output
    output_rows = criteria_rows(result.output, "output_mse")
    assert set(output_rows) == {"a->b", "b->a"}, result.output
    assert all("pass" in row for row in output_rows.values())
    assert set(criteria_rows(result.output, "activation_mse")) == {"a->b", "b->a"}
    assert "FAIL" not in result.output
    assert "timings:" in result.output
    assert "record:" in result.output
    assert "all criteria met" in result.output


def test_run_1d_writes_a_record_that_meets_the_thesis_figures(run_1d):
    result, report_dir = run_1d
    assert result.exit_code == 0, result.output
    folders = list(report_dir.iterdir())
    assert len(folders) == 1 and folders[0].name.startswith("1d-"), folders
    record = json.loads((folders[0] / "record.json").read_text())

    assert record["schema"] == "equivtest.run" and record["schema_version"] == 1
    assert record["suite"] == "1d"
    assert record["pair"]["name"] == "1d"
    assert record["pair"]["layers"]["a"]["path"] == "act1" and record["pair"]["layers"]["b"]["path"] == "act3"
    assert record["fit"]["n_samples"] == 512 and record["fit"]["neighbourhood_size"] == 1024
    assert record["result"]["passed"] is True

    criteria = {(c["name"], c["direction"]): c for c in record["result"]["criteria"]}
    assert criteria["output_mse", "a->b"]["value"] < 2.2e-8
    assert criteria["output_mse", "b->a"]["value"] < 1.3e-7
    # The thesis's figures are the asserted thresholds.
    assert criteria["output_mse", "a->b"]["threshold"] == 2.2e-8
    assert criteria["output_mse", "b->a"]["threshold"] == 1.3e-7
    # A's one-wide layer is below Whitney's bound: reported, not asserted.
    assert criteria["whitney", "a"]["threshold"] is None and criteria["whitney", "a"]["passed"] is None

    assert record["artefacts"] == {"transformation": "transformation.npz", "plots": "plots.npz"}
    loaded = equivtest.Transformation.load(folders[0] / "transformation.npz")
    assert loaded.get_params()["n_eigenvectors"] == one_d.CONFIG.n_eigenvectors


def test_run_1d_gives_the_ladder_beside_the_thesis_method(run_1d):
    # terminal, record and HTML page, through the route `equivtest run FILE::NAME` takes
    result, report_dir = run_1d
    assert "Ladder of maps: equivalent up to a nonlinear map" in result.output, result.output
    (folder,) = report_dir.iterdir()
    record = json.loads((folder / "record.json").read_text())
    info = record["result"]["info"]
    assert info["verdict_kind"] == "equivalent" and info["verdict_up_to"] == "nonlinear"
    (table,) = [t for t in record["tables"] if t["title"].startswith("Ladder of maps")]
    passed = {(row[0], row[1]) for row in table["rows"] if row[table["columns"].index("passed")] == "yes"}
    assert passed == {("a->b", "nonlinear"), ("b->a", "affine")}
    from equivtest.report.html import write_html

    assert "Ladder of maps" in write_html(folder).read_text()


def test_run_unknown_suite_exits_2_listing_the_suites(tmp_path):
    result = runner.invoke(app, ["run", "nosuch", "--report-dir", str(tmp_path / "reports")])
    assert result.exit_code == 2, result.output
    assert "no suite named 'nosuch'" in result.output
    assert "available: 1d" in result.output
    assert not (tmp_path / "reports").exists()


def test_no_record_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --report-dir is ./reports
    result = runner.invoke(app, ["run", "1d", "--no-record"])
    assert result.exit_code == 0, result.output
    assert criteria_rows(result.output, "output_mse").keys() == {"a->b", "b->a"}
    assert "record:" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_failing_run_exits_1_and_records_the_overrides(tmp_path):
    # Far fewer samples than the suite's: the thesis's thresholds are missed.
    report_dir = tmp_path / "reports"
    result = runner.invoke(
        app, ["run", "1d", "--report-dir", str(report_dir), "--samples", "32", "--neighbourhood", "64", "--seed", "3"]
    )
    assert result.exit_code == 1, result.output
    assert re.search(r"\d+ criterion\(s\) failed", result.output), result.output
    assert "FAIL" in result.output
    (folder,) = report_dir.iterdir()
    record = json.loads((folder / "record.json").read_text())
    assert record["result"]["passed"] is False
    assert record["fit"]["n_samples"] == 32 and record["fit"]["neighbourhood_size"] == 64
    assert record["sampler"]["seed"] == 3


def test_failing_run_with_no_record_writes_nothing(tmp_path):
    report_dir = tmp_path / "reports"
    result = runner.invoke(
        app, ["run", "1d", "--no-record", "--report-dir", str(report_dir), "--samples", "32", "--neighbourhood", "64"]
    )
    assert result.exit_code == 1, result.output
    assert not report_dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_run_writes_an_html_report_and_report_rerenders_it(tmp_path):
    reports = tmp_path / "reports"
    result = runner.invoke(app, ["run", "1d", "--report-dir", str(reports)])
    assert result.exit_code == 0, result.output
    (folder,) = [p.parent for p in reports.glob("*/record.json")]
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "output_mse" in page
    (folder / "report.html").unlink()
    again = runner.invoke(app, ["report", "--reports", str(reports)])  # the newest run
    assert again.exit_code == 0, again.output
    assert (folder / "report.html").exists()


def test_report_compare_shows_the_change_between_two_runs(tmp_path):
    reports = tmp_path / "reports"
    for samples in ("256", "512"):
        assert runner.invoke(app, ["run", "1d", "--report-dir", str(reports), "--samples", samples]).exit_code in (0, 1)
    first, second = sorted(reports.glob("*/record.json"), key=lambda p: p.stat().st_mtime)
    result = runner.invoke(app, ["report", "--compare", str(first.parent), "--compare", str(second.parent)])
    assert result.exit_code == 0, result.output
    assert "output_mse" in result.output and "%" in result.output
    assert "better" in result.output or "worse" in result.output
