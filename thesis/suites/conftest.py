"""The suites are the project's experiments: their runs are always recorded.

Unless given on the command line, ``pytest thesis/suites/`` writes a record, the fitted
transformation and an HTML report of every evaluated pair under ``reports/``.
"""

from pathlib import Path


def pytest_configure(config):
    if not config.getoption("equivtest_report_dir"):
        config.option.equivtest_report_dir = str(Path(__file__).resolve().parents[2] / "reports")
        config.option.equivtest_html = True
