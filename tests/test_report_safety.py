"""`equivtest report` reads only what is inside a run folder, refuses malformed records
with a clear error, and shows names with brackets as they are."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from equivtest.cli import app
from equivtest.criteria import EquivalenceResult, criterion
from equivtest.report.tables import ResultTable
from equivtest.report.terminal import criteria_table

runner = CliRunner()


def record(pair: str = "mlp", value=1e-6, plots="plots.npz") -> dict:
    return {
        "schema": "equivtest.run", "schema_version": 1, "created": "2026-01-01T00:00:00+00:00", "suite": None,
        "pair": {"name": pair, "names": ["a", "b"]},
        "result": {"pair": pair, "passed": True, "info": {}, "criteria": [
            {"name": "activation_mse", "direction": "a->b", "value": value, "threshold": None,
             "higher_is_better": False, "passed": None, "detail": ""},
        ]},
        "artefacts": {"plots": plots}, "tables": [],
    }


def run_folder(root: Path, name: str = "run", **kwargs) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps(record(**kwargs)))
    return folder


def report(*args) -> tuple[int, str]:
    result = runner.invoke(app, ["report", *map(str, args)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.exit_code, " ".join(result.output.split())  # unwrapped


# -- case 10: artefact paths stay inside the run folder ---------------------------------------


def test_an_artefact_path_out_of_the_run_folder_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    np.savez(outside / "plots.npz", samples_a=np.zeros((3, 2)))
    folder = run_folder(tmp_path / "reports", plots="../../outside/plots.npz")
    code, out = report(folder)
    assert code == 2 and "artefact 'plots'" in out and "points outside the run folder ('../../outside/plots.npz')" in out
    assert not (folder / "report.html").exists()


def test_an_absolute_artefact_path_is_refused(tmp_path):
    folder = run_folder(tmp_path, plots="/etc/passwd")
    code, out = report(folder)
    assert code == 2 and "is the absolute path '/etc/passwd'" in out


def test_a_symbolic_link_out_of_the_run_folder_is_refused(tmp_path):
    np.savez(tmp_path / "elsewhere.npz", samples_a=np.zeros((3, 2)))
    folder = run_folder(tmp_path)
    (folder / "plots.npz").symlink_to(tmp_path / "elsewhere.npz")
    code, out = report(folder)
    assert code == 2 and "points outside the run folder" in out


def test_a_missing_artefact_is_a_clear_error(tmp_path):
    folder = run_folder(tmp_path)
    code, out = report(folder)
    assert code == 2 and "artefact 'plots'" in out and "(plots.npz) is missing" in out


def test_a_damaged_plot_file_is_a_clear_error(tmp_path):
    folder = run_folder(tmp_path)
    (folder / "plots.npz").write_bytes(b"PK\x03\x04 not really")
    code, out = report(folder)
    assert code == 2 and "is not a readable plot file" in out


def test_a_plot_file_without_the_arrays_drawn_is_a_clear_error(tmp_path):
    folder = run_folder(tmp_path)
    np.savez(folder / "plots.npz", samples_a=np.zeros((3, 2)))
    code, out = report(folder)
    assert code == 2 and "does not hold the arrays the report draws" in out


# -- case 15: malformed records, and markup in names ------------------------------------------


@pytest.mark.parametrize("value", ["1e-6", None, True])
def test_a_record_with_a_non_number_value_is_refused(tmp_path, value):
    folder = run_folder(tmp_path, value=value)
    code, out = report(folder)
    assert code == 2 and "is not a valid run record: criterion 0 (activation_mse) has a value that is not a number" in out
    code, out = report("--compare", folder, "--compare", folder)
    assert code == 2 and "not a number" in out


def test_a_record_that_is_not_json_is_refused(tmp_path):
    folder = run_folder(tmp_path)
    (folder / "record.json").write_text("{half")
    code, out = report(folder)
    assert code == 2 and "cannot be read as a run record" in out


def test_brackets_in_a_pair_name_and_path_are_shown_by_compare(tmp_path):
    # run folders are named after the pair, so its brackets reach the table's title
    a = run_folder(tmp_path, "mlp[/]-20260101", pair="mlp[/]")
    b = run_folder(tmp_path, "mlp[v2]-20260102", pair="mlp[v2]", value=2e-6)
    result = runner.invoke(app, ["report", "--compare", str(a), "--compare", str(b)])
    assert result.exit_code == 0, repr(result.exception)
    out = "".join(result.output.split())
    assert "mlp[/]-20260101" in out and "mlp[v2]-20260102" in out and "+100.0%" in out


def render(table) -> str:
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(table)
    return console.file.getvalue()


def test_a_pair_name_with_brackets_shows_in_the_summary_table():
    result = EquivalenceResult("mlp[v2]", [criterion("activation_mse", "a->b", 1e-6, "detail [x]")])
    out = render(criteria_table([result]))
    assert "mlp[v2]" in out and "detail [x]" in out


def test_a_suite_table_shows_brackets_in_every_cell():
    table = ResultTable("table [a]", ["model [k]", "score"], notes="note [n]")
    table.add_row("mlp[v2]", 0.5)
    out = render(table.to_rich())
    assert all(text in out for text in ("table [a]", "model [k]", "mlp[v2]", "note [n]"))
