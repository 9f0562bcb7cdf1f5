"""Suite tables: one format for the terminal, the JSON record and the HTML page."""

import types

import numpy as np
import pytest
from rich.console import Console

from equivtest.criteria import EquivalenceResult, criterion
from equivtest.errors import EquivtestError
from equivtest.outcome import ExperimentOutcome
from equivtest.runner import run_suite
from equivtest.report.tables import ResultTable


def _table():
    t = ResultTable("Stitched accuracy", ["network", "accuracy", "n"], notes="test windows")
    t.add_row("LSTM", np.float64(0.8819), np.int64(486))
    t.add_row("stitched p=25", 0.87654321, None)
    return t


def test_a_table_round_trips_through_its_dict_with_full_precision():
    t = _table()
    back = ResultTable.from_dict(t.to_dict())
    assert back == t
    assert back.rows[1][1] == 0.87654321  # rounding is for display only
    assert type(back.rows[0][1]) is float and type(back.rows[0][2]) is int  # numpy scalars become plain


def test_a_row_of_the_wrong_width_is_refused():
    with pytest.raises(EquivtestError, match="3 columns, got a row of 2"):
        _table().add_row("x", 1.0)


def test_terminal_and_html_show_every_cell():
    t = _table()
    console = Console(width=120, record=True)
    console.print(t.to_rich())
    text = console.export_text()
    assert "0.8765" in text and "486" in text and "—" in text and "test windows" in text
    page = t.to_html()
    assert page.count("<tr>") == 3 and "0.8819" in page and "&lt;" not in page


def test_run_suite_hands_over_to_a_suite_that_runs_itself():
    calls = {}

    def run(*, profile, report_dir, stage, null_shuffles):
        calls.update(profile=profile, report_dir=report_dir)
        result = EquivalenceResult("x", [criterion("agreement", "a->b", 0.5).with_threshold(0.9)])
        return ExperimentOutcome([result], tables=[_table()])

    module = types.SimpleNamespace(NAME="fake", run=run)
    outcome = run_suite(module, profile="full", report_dir=None)
    assert calls == {"profile": "full", "report_dir": None}
    assert not outcome.passed and "agreement [a->b] = 0.5" in outcome.failures()[0]
    with pytest.raises(ValueError, match="unknown profile"):
        run_suite(module, profile="huge")
    with pytest.raises(ValueError, match="--profile"):
        run_suite(module, sampler_kwargs={"n_samples": 3})
