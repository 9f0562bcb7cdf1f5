"""The plugin's sweep fixtures: ``equivtest_sweep`` (a layer-by-layer sweep, once per session
for one pair, input content and options) and ``equivtest_sweep_baseline`` (its per-layer
verdicts held against a stored baseline), and the sweeps' part of the end-of-session
summary. :mod:`equivtest.plugin` exposes the fixtures; this module holds them.
"""

from __future__ import annotations

import re

import pytest

_SWEEPS = pytest.StashKey[list]()  # (pair name, SweepResult, record path or None) from equivtest_sweep


@pytest.fixture(scope="session")
def equivtest_sweep(request):
    """A layer-by-layer sweep: ``equivtest_sweep(pair, inputs, layers_a=None, layers_b=None, **options)``
    (see :func:`equivtest.sweep.sweep`); computed once per session for one pair, input content and
    options, listed in the end-of-session summary, and written as a run record (``record["sweep"]``)
    with ``--equivtest-report-dir``. Assert with ``sweep.assert_equivalent(up_to="affine", through=LAYER)``."""
    return _sweep_cache(request.config)


def _sweep_cache(config):
    cache: dict = {}

    def run(pair, inputs, layers_a=None, layers_b=None, **options):
        from .pairing import content_digest
        from .sweep import sweep

        key = (id(pair), content_digest(list(inputs) if not hasattr(inputs, "shape") else inputs),
               content_digest((layers_a, layers_b, options)))
        if key not in cache:
            result = sweep(pair, inputs, layers_a, layers_b, **options)
            cache[key] = (pair, result)
            config.stash[_SWEEPS].append((getattr(pair, "name", "sweep"), result, _write_sweep_record(config, pair, result)))
        return cache[key][1]

    return run


def _write_sweep_record(config, pair, result):
    """The sweep's run folder (record.json, and report.html with ``--equivtest-html``), if a report dir is set."""
    report_dir = config.getoption("equivtest_report_dir")
    if not report_dir or not hasattr(pair, "describe"):
        return None
    from .record import write_sweep_run
    from .report.sweep import sweep_table

    record = write_sweep_run(pair, result, report_dir, tables=[sweep_table(result.to_dict())])
    if config.getoption("equivtest_html"):
        from .report.html import write_html

        write_html(record.parent)
    return record


def sweep_summary(config, console) -> list:
    """Print each sweep's table; the record paths to list after."""
    from .report.sweep import sweep_table

    paths = []
    for name, result, record in config.stash.get(_SWEEPS, []):
        console.print(sweep_table(result.to_dict()).to_rich())
        if record is not None:
            paths.append(record)
    return paths


class SweepBaselineCheck:
    """Callable returned by ``equivtest_sweep_baseline``: ``check(sweep, tolerances=..., name=...)``.

    The sweep's per-layer verdicts are held against ``NAME.json`` beside the test (as
    ``equivtest_baseline`` keeps its files): a layer whose rung got less rigid fails, so does a
    held-out error or a stitched score that moved beyond tolerance. ``--equivtest-force-regen``
    and ``--equivtest-regen-all`` rewrite it, as for other baselines."""

    def __init__(self, request):
        self._request = request

    def __call__(self, sweep, *, tolerances=None, name: str | None = None, pair: str | None = None):
        __tracebackhide__ = True
        from .baseline import BaselineFailure, check_sweep_baseline, write_sweep_baseline
        from .plugin import BaselineCheck, _artefact_hint

        config = self._request.config
        folder = BaselineCheck(self._request).folder
        name = name or re.sub(r"[^\w.-]+", "_", self._request.node.name)
        label = pair or f"{sweep.names[0]} vs {sweep.names[1]}"
        if config.getoption("equivtest_regen_all"):
            raise BaselineFailure(f"--equivtest-regen-all: baseline rewritten: "
                                  f"{write_sweep_baseline(folder, name, sweep, label)}")
        outcome = check_sweep_baseline(folder, name, sweep, label, tolerances=tolerances,
                                       regen=config.getoption("equivtest_force_regen"),
                                       artefact_hint=_artefact_hint(config))
        if outcome.status != "passed":
            flag = "" if outcome.status != "regressed" else "\n(accept the new values with --equivtest-force-regen)"
            raise BaselineFailure(f"sweep baseline {outcome.status} for {label!r}:\n  - "
                                  + "\n  - ".join(outcome.messages) + flag)
        return outcome


@pytest.fixture
def equivtest_sweep_baseline(request) -> SweepBaselineCheck:
    """Check a sweep's per-layer verdicts against its stored baseline: ``equivtest_sweep_baseline(sweep)``."""
    return SweepBaselineCheck(request)
