"""Run one experiment end to end: pair -> fit -> criteria -> record.

An experiment module either describes a single fit (``pair()``, ``sampler()``,
``CONFIG``, ``test_inputs()``, ``THRESHOLDS``) or runs itself through
``run(profile=..., report_dir=..., stage=..., null_shuffles=...)`` returning an
:class:`~equivtest.outcome.ExperimentOutcome`; :func:`run_suite` calls either.

A single-fit module that also defines ``ladder_inputs()`` (and optionally ``LADDER_RUNGS``)
gets the ladder's verdict beside its transformation, through :func:`ladder_beside`: the one
route by which a verdict reaches the terminal, the run record and the HTML page, also taken by
suites that run themselves and by ``equivtest run FILE::NAME``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Callable

from .criteria import EquivalenceResult
from .engine import fit_pair
from .record import write_run
from .outcome import ExperimentOutcome

PROFILES = ("ci", "full")


def ladder_beside(pair, inputs, result: EquivalenceResult, *, rungs=None, label: str | None = None, note: str = "",
                  stage: Callable[[str], None] | None = None):
    """The ladder's verdict on ``inputs`` beside the transformation's ``result``.

    Returns ``(result, table, verdict)``: the result with the verdict in its info
    (:func:`~equivtest.verdict_record.verdict_info`: its text, kind, rung and ``to_dict()``; its criteria untouched), the verdict's
    table for the terminal, the run record and the HTML page, and the
    :class:`~equivtest.verdict.Verdict`. ``rungs``: the ladder (default
    :data:`equivtest.maps.LADDER`); ``label`` goes into the table's title (e.g. a slice
    length), ``note`` into its notes (e.g. which rungs a profile leaves out and why).
    """
    from .check import ladder_verdict, verdict_table
    from .verdict_record import verdict_info

    verdict = ladder_verdict(pair, inputs, rungs=rungs, stage=stage)
    result = result.with_info(**verdict_info(verdict))
    table = verdict_table(verdict, f"Ladder of maps ({label}): {verdict.text}" if label else None)
    if note:
        table.notes = f"{table.notes}. {note}" if table.notes else note
    return result, table, verdict


def run_experiment(
    experiment: ModuleType,
    *,
    report_dir: str | Path | None = "reports",
    stage: Callable[[str], None] | None = None,
    sampler_kwargs: dict | None = None,
    null_shuffles: int = 0,
) -> ExperimentOutcome:
    pair = experiment.pair(log=stage)
    fitted = fit_pair(pair, experiment.sampler(**(sampler_kwargs or {})), experiment.CONFIG, stage=stage)
    result = fitted.evaluate(
        experiment.test_inputs(), thresholds=experiment.THRESHOLDS, stage=stage, null_shuffles=null_shuffles
    )
    tables, verdicts = [], []
    if hasattr(experiment, "ladder_inputs"):  # after the transformation's path, which it leaves as it was
        result, table, verdict = ladder_beside(pair, experiment.ladder_inputs(), result,
                                               rungs=getattr(experiment, "LADDER_RUNGS", None), stage=stage)
        tables, verdicts = [table], [verdict]
    records = [] if report_dir is None else [write_run(fitted, result, report_dir, suite=experiment.NAME,
                                                       tables=tables)]
    return ExperimentOutcome([result], tables, records=records, timings=dict(fitted.timings), verdicts=verdicts)


def run_suite(
    experiment: ModuleType,
    *,
    profile: str = "ci",
    report_dir: str | Path | None = "reports",
    stage: Callable[[str], None] | None = None,
    sampler_kwargs: dict | None = None,
    null_shuffles: int = 0,
) -> ExperimentOutcome:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if hasattr(experiment, "run"):
        if sampler_kwargs:
            raise ValueError(f"suite {experiment.NAME!r} sets its samples per profile; use --profile, "
                             "not --samples/--neighbourhood/--seed")
        return experiment.run(profile=profile, report_dir=report_dir, stage=stage, null_shuffles=null_shuffles)
    return run_experiment(
        experiment, report_dir=report_dir, stage=stage, sampler_kwargs=sampler_kwargs, null_shuffles=null_shuffles
    )
