"""The pytest plugin: pairs as fixtures, a session-wide fit cache, a summary table.

Loaded through the ``pytest11`` entry point when equivtest is installed. A test asks
for ``equivtest_fit`` and calls it with a :class:`NetworkPair` (torch modules or
transformers models), the fit's data (a sampler, or a list of texts or waveforms) and
a config; the fit runs once per session for each distinct pair, data content and config.
The fit handed to a test is a :class:`SessionFit`: its ``evaluate`` records the
evaluation (and, through :meth:`EquivalenceResult.derive`, every result a test derives
from it, such as the one ``assert_equivalent`` returns) for the end-of-session table,
and for a JSON record when ``--equivtest-report-dir`` is given; ``equivtest_verdict``'s
verdicts are listed and recorded the same way. Nothing is planted in
the engine: the plugin follows evaluations through its own wrapper.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ._plugin_sweeps import _SWEEPS, equivtest_sweep, equivtest_sweep_baseline, sweep_summary  # noqa: F401 (fixtures)
from .criteria import EquivalenceResult  # numpy only: the heavy imports (torch, datafold) wait

if TYPE_CHECKING:
    from .engine import FitConfig, FittedPair
    from .pairs import NetworkPair
    from .sampling import Sampler

_KEY = pytest.StashKey["EquivtestSession"]()


def pytest_addoption(parser):
    group = parser.getgroup("equivtest", "network equivalence (equivtest)")
    group.addoption(
        "--equivtest-report-dir", metavar="DIR", default=None,
        help="write a JSON record and the fitted transformation of every evaluated pair into DIR",
    )
    group.addoption(
        "--equivtest-html", action="store_true", default=False,
        help="also render report.html into each run folder (needs --equivtest-report-dir)",
    )
    group.addoption(
        "--equivtest-null", metavar="N", type=int, default=0,
        help="null calibration: refit each pair on N random re-pairings of its samples and report "
        "null_activation_mse and null_ratio",
    )
    group.addoption(
        "--equivtest-force-regen", action="store_true", default=False,
        help="rewrite the baselines of checks that regressed (those tests still fail once, naming the files)",
    )
    group.addoption(
        "--equivtest-regen-all", action="store_true", default=False,
        help="rewrite every baseline that is checked (those tests fail once, naming the files)",
    )
    group.addoption(
        "--equivtest-no-summary", action="store_true", default=False,
        help="do not print the table of equivalence criteria at the end of the session",
    )


@dataclass
class _Evaluated:
    """One evaluation made in a test, and the latest result a test derived from it."""

    fitted: "FittedPair"
    result: "EquivalenceResult"


@dataclass
class EquivtestSession:
    """Per-session state. Options are read when used, so a conftest may still set them."""

    config: pytest.Config
    evaluated: list = field(default_factory=list)  # _Evaluated, in the order tests evaluated
    from_workers: list = field(default_factory=list)  # results reported by pytest-xdist workers
    records: list[Path] = field(default_factory=list)
    fits: dict = field(default_factory=dict)
    verdicts: list = field(default_factory=list)  # plain-data entries (equivtest.verdict_record.verdict_entry)

    @property
    def results(self) -> list:
        return [entry.result for entry in self.evaluated] + self.from_workers

    @property
    def report_dir(self) -> Path | None:
        value = self.config.getoption("equivtest_report_dir")
        return Path(value) if value else None

    @property
    def html(self) -> bool:
        return bool(self.config.getoption("equivtest_html"))

    def write_records(self) -> None:
        """Written at the end of the session, so records show the thresholds the tests asserted."""
        if self.report_dir is None:
            return
        from .record import write_run

        for entry in self.evaluated:
            record = write_run(entry.fitted, entry.result, self.report_dir)
            self.records.append(record)
            if self.html:
                from .report.html import write_html

                self.records.append(write_html(record.parent))
        _write_verdict_records(self)


def pytest_configure(config):
    config.stash[_KEY] = EquivtestSession(config)
    config.stash[_SWEEPS] = []
    _share_cores_between_workers()


def _share_cores_between_workers() -> None:
    """Under pytest-xdist, each worker's torch gets its share of the cores, not all of them.

    With ``-n 2`` on 2 cores, two workers of 2 torch threads each spin at OpenMP's barrier
    after every small operation whenever the other worker holds a core (measured: the 1d
    capture went from 0.13 s to 4.6 s). ``OMP_NUM_THREADS`` set by the user wins.
    """
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not workers or "OMP_NUM_THREADS" in os.environ:
        return
    import torch

    from ._threads import usable_cores

    torch.set_num_threads(max(1, usable_cores() // max(1, int(workers))))


def pytest_sessionstart(session):
    config = session.config
    if config.getoption("equivtest_html") and not config.getoption("equivtest_report_dir"):
        raise pytest.UsageError("--equivtest-html needs --equivtest-report-dir DIR (where the run folders go)")


class FitCache:
    """Callable returned by the ``equivtest_fit`` fixture: ``fit(pair, data, config)``.

    A fit is shared by every test that asks for the same pair object, the same data
    *content* (the drawn samples' bytes, or the texts and waveforms themselves) and the
    same config, so two samplers over different arrays never share a fit.
    """

    def __init__(self, session: EquivtestSession):
        self._session = session

    def __call__(self, pair: "NetworkPair", data, config: "FitConfig | None" = None) -> "SessionFit":
        from .engine import FitConfig, fit
        from .pairs import NetworkPair

        if not isinstance(pair, NetworkPair):
            raise TypeError(f"equivtest_fit needs a NetworkPair, got {type(pair).__name__}")
        config = config or FitConfig()
        key = (id(pair), pair.pairing.data_key(data), config)
        fitted = self._session.fits.get(key)
        if fitted is None:
            fitted = self._session.fits[key] = (pair, fit(pair, data, config))  # the pair is held so its id stays unique
        return SessionFit(fitted[1], self._session)


class SessionFit:
    """A fitted pair as a test sees it: ``evaluate`` records what the test evaluated.

    The shared :class:`~equivtest.engine.FittedPair` is never changed; every other
    attribute is the fitted pair's own. ``--equivtest-null N`` is the default of
    ``null_shuffles``.
    """

    def __init__(self, fitted: "FittedPair", session: EquivtestSession):
        self._fitted, self._session = fitted, session

    def __getattr__(self, name):
        return getattr(self._fitted, name)

    @property
    def fitted(self) -> "FittedPair":
        return self._fitted

    def evaluate(self, test_inputs, **kwargs) -> "EquivalenceResult":
        kwargs.setdefault("null_shuffles", self._session.config.getoption("equivtest_null"))
        result = self._fitted.evaluate(test_inputs, **kwargs)
        entry = _Evaluated(self._fitted, result)
        self._session.evaluated.append(entry)
        return _tracked(result, entry)


class _TrackedResult(EquivalenceResult):
    """A result the plugin follows: a result derived from it (thresholds asserted, a
    baseline's status) becomes what the session's record and table show."""

    def derive(self, **changes):
        return _tracked(super().derive(**changes), self._entry)


def _tracked(result, entry: _Evaluated) -> _TrackedResult:
    """``result`` as a :class:`_TrackedResult` whose derived results update ``entry``."""
    tracked = _TrackedResult(result.pair, result.criteria, result.info, result.arrays)
    object.__setattr__(tracked, "_entry", entry)
    entry.result = tracked
    return tracked


@pytest.fixture(scope="session")
def equivtest_fit(request) -> FitCache:
    """Fit a pair's transformation once per session: ``equivtest_fit(pair, data, config)``."""
    return FitCache(request.config.stash[_KEY])


@pytest.fixture(scope="session")
def equivtest_verdict(request):
    """The ladder's verdict on a pair: ``equivtest_verdict(pair, inputs, **options)`` (see
    :func:`equivtest.ladder_verdict`); computed once per session for one pair, input content
    and options, and listed in the end-of-session summary; with ``--equivtest-report-dir`` each
    verdict gets a run folder (``record.json``, and ``report.html`` with ``--equivtest-html``).
    Assert with ``verdict.assert_equivalent(up_to="affine")``."""
    session = request.config.stash[_KEY]
    cache: dict = {}

    def verdict(pair, inputs, **options):
        from .check import ladder_verdict
        from .pairing import content_digest

        key = (id(pair), content_digest(list(inputs) if not hasattr(inputs, "shape") else inputs),
               content_digest(options))
        if key not in cache:
            cache[key] = (pair, ladder_verdict(pair, inputs, **options))
            _note_verdict(session, pair, cache[key][1])
        return cache[key][1]

    return verdict


# -- verdicts in the summary, the run records and the HTML pages --------------------------------
# A verdict is kept as plain data (equivtest.verdict_record.verdict_entry): a pytest-xdist worker
# hands its verdicts to the controller as JSON, and the controller prints and writes them all.


def _note_verdict(session: EquivtestSession, pair, verdict) -> None:
    from .verdict_record import verdict_entry

    session.verdicts.append(verdict_entry(pair, verdict, f"equivtest: {pair.name}: {verdict.text}"))


def _is_xdist_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _write_verdict_records(session: EquivtestSession) -> None:
    """One run folder per verdict (record.json, and report.html with --equivtest-html); an
    xdist worker leaves that to the controller, which receives its verdicts."""
    if session.report_dir is None or _is_xdist_worker(session.config):
        return
    from .verdict_record import write_verdict_run

    for entry in session.verdicts:
        session.records.extend(write_verdict_run(entry, session.report_dir, html=session.html))


def _verdict_tables(session: EquivtestSession) -> list:
    from .report.tables import ResultTable

    return [ResultTable.from_dict(entry["table"]) for entry in session.verdicts]


class BaselineCheck:
    """Callable returned by ``equivtest_baseline``: ``check(fitted, result, tolerances=..., name=...)``;
    ``fitted=None`` guards the result's figures alone (a figures-only baseline, no stored transformation).

    Baselines live beside the test file, in a folder named after the test module
    (``tests/test_x.py`` -> ``tests/test_x/NAME.json`` and ``NAME.npz``), NAME being
    the test's name unless given.
    """

    def __init__(self, request):
        self._request = request

    @property
    def folder(self) -> Path:
        path = Path(self._request.path)
        return path.parent / path.stem

    def __call__(self, fitted, result, *, tolerances=None, name: str | None = None):
        __tracebackhide__ = True
        from .baseline import BaselineFailure, check_baseline, write_baseline

        config = self._request.config
        fitted = getattr(fitted, "fitted", fitted)
        name = name or re.sub(r"[^\w.-]+", "_", self._request.node.name)
        if fitted is not None and getattr(result, "arrays", None) is None:
            raise TypeError("equivtest_baseline needs the result evaluate() returned (it holds the test "
                            "activations the stored transformation is checked on), not one rebuilt from a dict")
        if config.getoption("equivtest_regen_all"):
            json_path, _ = write_baseline(self.folder, name, fitted, result)
            result.with_info(baseline="regenerated")
            raise BaselineFailure(f"--equivtest-regen-all: baseline rewritten: {json_path}")
        outcome = check_baseline(
            self.folder, name, fitted, result, tolerances=tolerances,
            regen=config.getoption("equivtest_force_regen"), artefact_hint=_artefact_hint(config),
        )
        result.with_info(baseline=outcome.status)
        if outcome.status != "passed":
            flag = "" if outcome.status != "regressed" else "\n(accept the new values with --equivtest-force-regen)"
            raise BaselineFailure(
                f"baseline {outcome.status} for pair {result.pair!r}:\n  - " + "\n  - ".join(outcome.messages) + flag
            )
        return outcome


def _artefact_hint(config) -> str | None:
    report_dir = config.getoption("equivtest_report_dir")
    return f"run records in {report_dir}" if report_dir else "rerun with --equivtest-report-dir DIR for the run's record and plots"


@pytest.fixture
def equivtest_baseline(request) -> BaselineCheck:
    """Check a result against its stored baseline: ``equivtest_baseline(fitted, result)``."""
    return BaselineCheck(request)


def pair(func=None, *, name: str | None = None, scope: str = "session", data=None, test_inputs=None,
         config=None, thresholds=None, ladder_inputs=None):
    """Declare a fixture that returns a :class:`NetworkPair` (checked when it runs).

    Use as ``@equivtest.pair`` or ``@equivtest.pair(name="my_pair", scope="module")``.
    ``data`` (the fit's sampler, or texts/waveforms), ``test_inputs``, ``config`` and
    ``thresholds`` (values, or functions of no arguments that return them) let
    ``equivtest run FILE::NAME`` fit and report the pair from the command line; with
    ``ladder_inputs`` the run also gives the ladder's verdict on those inputs (a table in
    the terminal, the record and the HTML page). pytest ignores them.
    """

    def decorate(f):
        @functools.wraps(f)
        def fixture_function(*args, **kwargs):
            from .pairs import NetworkPair

            value = f(*args, **kwargs)
            if not isinstance(value, NetworkPair):
                raise TypeError(
                    f"@equivtest.pair fixture {(name or f.__name__)!r} returned {type(value).__name__}; "
                    "return equivtest.NetworkPair(a, b, layer_a, layer_b), or NetworkPair(HFNetwork(...), HFNetwork(...))"
                )
            return value

        fixture = pytest.fixture(scope=scope, name=name)(fixture_function)
        from .userpairs import PairSpec

        fixture.__equivtest__ = PairSpec(f, name or f.__name__, data, test_inputs, config, thresholds, ladder_inputs)
        return fixture

    return decorate(func) if func is not None else decorate


def pytest_sessionfinish(session, exitstatus):
    state = session.config.stash.get(_KEY, None)
    if state is None:
        return
    state.write_records()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # a pytest-xdist worker: hand the results to the controller
        workeroutput["equivtest"] = json.dumps(
            {"results": [r.to_dict() for r in state.results], "records": [str(p) for p in state.records],
             "verdicts": state.verdicts}
        )


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist controller: collect each worker's results for the one summary table."""
    state = node.config.stash.get(_KEY, None)
    payload = getattr(node, "workeroutput", {}).get("equivtest")
    if state is None or not payload:
        return
    from .criteria import EquivalenceResult

    data = json.loads(payload)
    state.from_workers.extend(EquivalenceResult.from_dict(r) for r in data["results"])
    state.records.extend(Path(p) for p in data["records"])
    state.verdicts.extend(data.get("verdicts", []))  # written by the controller at the session's end


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = config.stash.get(_KEY, None)
    sweeps = config.stash.get(_SWEEPS, [])
    if session is None or not (session.results or session.verdicts or sweeps) or config.getoption("equivtest_no_summary"):
        return
    from rich.console import Console

    from .report.terminal import criteria_table

    buffer = io.StringIO()
    width = getattr(terminalreporter, "_tw", None)
    console = Console(file=buffer, width=max(100, width.fullwidth if width else 120), force_terminal=terminalreporter.hasmarkup)
    if session.results:
        console.print(criteria_table(session.results, "equivtest: equivalence criteria"))
    for table in _verdict_tables(session):
        console.print(table.to_rich())
    sweep_records = sweep_summary(config, console)
    terminalreporter.section("equivtest")
    terminalreporter.write(buffer.getvalue())
    for path in session.records + sweep_records:
        terminalreporter.write_line(f"{'report' if path.suffix == '.html' else 'record'}: {path}")
