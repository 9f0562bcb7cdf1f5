"""What a suite run produces, whatever the number of fits it makes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .criteria import EquivalenceResult
from .report.tables import ResultTable


@dataclass
class ExperimentOutcome:
    """Every fit's criteria, the suite's own tables, the records written, where time went,
    and the ladder's verdicts beside the fits (:func:`equivtest.runner.ladder_beside`).

    A suite that makes one fit gets this from :func:`equivtest.runner.run_suite`;
    a suite with several fits (slice lengths, directions, held-out pairs) builds it in its
    own ``run()``.
    """

    results: list[EquivalenceResult]
    tables: list[ResultTable] = field(default_factory=list)
    records: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    verdicts: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def failures(self) -> list[str]:
        return [f"{r.pair}: {c.describe_failure()}" for r in self.results for c in r.failures()]
