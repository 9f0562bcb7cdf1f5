"""Run one experiment end to end: pair -> fit -> criteria -> record."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Callable

from ..engine import FittedPair, fit_pair
from ..criteria import EquivalenceResult
from ..record import write_run


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
