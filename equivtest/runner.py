"""Run one experiment end to end: pair -> fit -> criteria -> record.

An experiment module either describes a single fit (``pair()``, ``sampler()``,
``CONFIG``, ``test_inputs()``, ``THRESHOLDS``) or runs itself through
``run(profile=..., report_dir=..., stage=..., null_shuffles=...)`` returning an
:class:`~equivtest.outcome.ExperimentOutcome`; :func:`run_suite` calls either.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Callable

from .criteria import EquivalenceResult
from .engine import FittedPair, fit_pair
from .record import write_run
from .outcome import ExperimentOutcome

PROFILES = ("ci", "full")


def run_experiment(
    experiment: ModuleType,
    *,
    report_dir: str | Path | None = "reports",
    stage: Callable[[str], None] | None = None,
    sampler_kwargs: dict | None = None,
    null_shuffles: int = 0,
) -> tuple[FittedPair, EquivalenceResult, Path | None]:
    pair = experiment.pair(log=stage)
    fitted = fit_pair(pair, experiment.sampler(**(sampler_kwargs or {})), experiment.CONFIG, stage=stage)
    result = fitted.evaluate(
        experiment.test_inputs(), thresholds=experiment.THRESHOLDS, stage=stage, null_shuffles=null_shuffles
    )
    record = write_run(fitted, result, report_dir, suite=experiment.NAME) if report_dir is not None else None
    return fitted, result, record


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
    fitted, result, record = run_experiment(
        experiment, report_dir=report_dir, stage=stage, sampler_kwargs=sampler_kwargs, null_shuffles=null_shuffles
    )
    return ExperimentOutcome([result], records=[record] if record else [], timings=dict(fitted.timings))
