"""The ``equivtest`` command (``equivtest.cli.app``) apart from the thesis's suites, run in process with Typer's CliRunner.

``equivtest list`` and ``equivtest run NAME`` find suites through the entry-point group
``equivtest.suites``; here the entry points are replaced by none, or by a tiny suite of
this folder (``tests/_tiny_suite.py``), so these tests hold with or without the thesis's
package installed. The thesis's 1d suite through the CLI: thesis/tests/test_cli_1d.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from typer.testing import CliRunner

import equivtest.suites
from equivtest.cli import app

runner = CliRunner()


def flat(text: str) -> str:
    """The output with its line wrapping undone."""
    return " ".join(text.split())


@pytest.fixture
def no_suites(monkeypatch):
    monkeypatch.setattr(equivtest.suites, "entry_points", lambda group: [])


@pytest.fixture
def tiny_suite(monkeypatch):
    eps = [EntryPoint("tiny", "tests._tiny_suite", equivtest.suites.GROUP)]
    monkeypatch.setattr(equivtest.suites, "entry_points", lambda group: eps if group == equivtest.suites.GROUP else [])


def test_run_unknown_suite_with_brackets_in_its_name(tmp_path):
    result = runner.invoke(app, ["run", "[/x]", "--report-dir", str(tmp_path / "reports")])
    assert result.exit_code == 2, result.output
    assert "no suite named '[/x]'" in result.output


def test_console_script_help():
    exe = shutil.which("equivtest", path=str(Path(sys.executable).parent))
    assert exe, f"no equivtest script next to {sys.executable}"
    done = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stderr
    assert "Test whether two neural networks are equivalent." in done.stdout
    assert re.search(r"\blist\b", done.stdout) and re.search(r"\brun\b", done.stdout), done.stdout


def test_report_on_a_folder_without_a_record_is_a_clear_error(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path)])
    assert result.exit_code == 2 and "no record.json" in result.output


def test_list_without_suites_says_how_to_install_the_thesis_suites(no_suites):
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    out = flat(result.output)
    assert "no suites are installed" in out
    assert "equivtest-thesis" in out and "pip install -e ./thesis" in out, out


def test_run_1d_without_the_thesis_exits_2_naming_the_package(no_suites, tmp_path):
    result = runner.invoke(app, ["run", "1d", "--report-dir", str(tmp_path / "reports")])
    assert result.exit_code == 2, result.output
    out = flat(result.output)
    assert "no suite named '1d'" in out
    assert "equivtest-thesis" in out and "pip install -e ./thesis" in out, out
    assert not (tmp_path / "reports").exists()


def test_unknown_suite_lists_the_installed_ones_and_the_thesis_package(tiny_suite, tmp_path):
    result = runner.invoke(app, ["run", "1d", "--report-dir", str(tmp_path / "reports")])
    assert result.exit_code == 2, result.output
    out = flat(result.output)
    assert "no suite named '1d'; available: tiny" in out
    assert "pip install -e ./thesis" in out, out


def test_a_suite_from_an_entry_point_is_listed_and_run(tiny_suite, tmp_path):
    listed = runner.invoke(app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert re.search(r"^tiny\s+Tiny: a tanh MLP vs\. a neuron permutation of it$", listed.output, re.M), listed.output

    reports = tmp_path / "reports"
    result = runner.invoke(app, ["run", "tiny", "--report-dir", str(reports)])
    assert result.exit_code == 0, result.output
    assert "Tiny: a tanh MLP vs. a neuron permutation of it" in result.output
    assert "all criteria met" in result.output
    (record,) = reports.glob("*/record.json")
    data = json.loads(record.read_text())
    assert data["suite"] == "tiny" and data["result"]["passed"] is True


def test_a_suite_whose_module_names_another_suite_is_refused(monkeypatch):
    eps = [EntryPoint("other", "tests._tiny_suite", equivtest.suites.GROUP)]
    monkeypatch.setattr(equivtest.suites, "entry_points", lambda group: eps)
    with pytest.raises(ValueError, match="whose NAME is 'tiny'"):
        equivtest.suites.get("other").load()


def test_listing_the_suites_imports_no_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from equivtest.cli import app\n"
        "result = CliRunner().invoke(app, ['list'])\n"
        "assert result.exit_code == 0, result.output\n"
        "heavy = sorted(m for m in ('torch', 'datafold', 'scipy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
