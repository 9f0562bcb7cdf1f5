"""Baselines: a fitted transformation and its criteria, kept beside the tests.

A baseline is two files, ``NAME.json`` (criteria, tolerances context, checksum) and
``NAME.npz`` (the transformation, see :mod:`equivtest.persist`). ``check_baseline``
compares a new result against it criterion by criterion, in the manner of
pytest-regressions: a missing baseline is written and the check fails once, naming
the file; a regression beyond tolerance fails with the old and new values; files are
rewritten only when asked (``regen``), and never silently.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ._io import atomic_write_bytes
from .errors import EquivtestError

SCHEMA = "equivtest.baseline"
SCHEMA_VERSION = 1


class BaselineError(EquivtestError):
    """A baseline file is missing pieces, corrupted or edited by hand."""


class BaselineFailure(AssertionError):
    """A check against a baseline failed (regression, or a baseline was just written)."""


@dataclass(frozen=True)
class Tolerance:
    """How far a criterion may move against its baseline in the bad direction.

    ``worse_by`` is relative (0.1: at most 10% worse than the baseline value), ``atol``
    absolute; both add up. For lower-is-better criteria "worse" means larger.
    """

    worse_by: float = 0.1
    atol: float = 1e-12

    def __post_init__(self):
        if self.worse_by < 0 or self.atol < 0:
            raise EquivtestError(f"tolerances must be non-negative, got worse_by={self.worse_by}, atol={self.atol}")

    def limit(self, old: float, higher_is_better: bool) -> float:
        slack = abs(old) * self.worse_by + self.atol
        return old - slack if higher_is_better else old + slack


def _as_tolerance(value) -> Tolerance:
    if isinstance(value, Tolerance):
        return value
    if isinstance(value, (int, float)):
        return Tolerance(worse_by=float(value))
    if isinstance(value, Mapping):
        return Tolerance(**value)
    raise EquivtestError(f"a tolerance is a Tolerance, a number (relative) or a mapping, got {value!r}")


def _checksum(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class BaselineOutcome:
    status: str  # "passed", "created", "regressed", "regenerated"
    messages: list[str]
    json_path: Path


def baseline_paths(folder: Path, name: str) -> tuple[Path, Path]:
    return folder / f"{name}.json", folder / f"{name}.npz"


def write_baseline(folder: Path, name: str, fitted, result) -> tuple[Path, Path]:
    json_path, npz_path = baseline_paths(folder, name)
    fitted.transformation.save(npz_path)
    criteria = [
        {"name": c.name, "direction": c.direction, "value": c.value, "higher_is_better": c.higher_is_better}
        for c in result.criteria
    ]
    payload = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "pair": result.pair,
               "criteria": criteria, "transformation": npz_path.name}
    atomic_write_bytes(json_path, json.dumps({**payload, "sha256": _checksum(payload)}, indent=2).encode())
    return json_path, npz_path


def read_baseline(json_path: Path) -> dict:
    """Load and verify a baseline's JSON; any damage is a :class:`BaselineError`."""
    fix = "regenerate it with --equivtest-force-regen (do not edit baselines by hand)"
    try:
        data = json.loads(Path(json_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {json_path} cannot be read ({exc}); {fix}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise BaselineError(f"{json_path} is not an equivtest baseline; {fix}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"{json_path} has schema version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}; {fix}")
    stored = data.pop("sha256", None)
    if stored != _checksum(data):
        raise BaselineError(f"baseline {json_path} does not match its checksum: it was edited or damaged; {fix}")
    try:
        for c in data["criteria"]:
            c["name"], c["direction"], float(c["value"]), bool(c["higher_is_better"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"baseline {json_path} has a malformed criterion ({exc!r}); {fix}") from None
    return data


def compare(baseline: dict, result, tolerances: Mapping | None = None) -> list[str]:
    """One message per criterion that regressed beyond its tolerance (empty: no regression)."""
    tolerances = dict(tolerances or {})
    default = _as_tolerance(tolerances.pop("default", Tolerance()))
    per_name = {k: _as_tolerance(v) for k, v in tolerances.items()}
    current = {(c.name, c.direction): c for c in result.criteria}
    problems = []
    for old in baseline["criteria"]:
        key = (old["name"], old["direction"])
        tol = per_name.get(old["name"], default)
        new = current.get(key)
        if new is None:
            problems.append(f"{old['name']} [{old['direction']}] is in the baseline but no longer computed")
            continue
        limit = tol.limit(float(old["value"]), bool(old["higher_is_better"]))
        worse = new.value < limit if old["higher_is_better"] else new.value > limit
        if worse or math.isnan(new.value):
            change = (new.value - old["value"]) / abs(old["value"]) * 100 if old["value"] else math.inf
            problems.append(
                f"{old['name']} [{old['direction']}] regressed: baseline {old['value']:.4g}, now {new.value:.4g} "
                f"({change:+.1f}%), allowed {'>=' if old['higher_is_better'] else '<='} {limit:.4g}"
            )
    return problems


def compare_held(baseline: dict, npz_path: Path, fitted, result, tolerances: Mapping | None = None) -> list[str]:
    """Apply the *baseline's* transformation to the current networks' test activations
    (those of ``result``'s own evaluation).

    Refitting absorbs any change that keeps the two representations equivalent (a
    retrained or perturbed network usually does), so the refit criteria alone cannot
    tell that a network changed. The stored transformation can: if either network now
    computes different activations, the old map no longer lands on them. Its activation
    MSE is held to the baseline's activation MSE, with the same tolerance.
    """
    from .errors import TransformFileError
    from .persist import load_transformation

    arrays = getattr(result, "arrays", None)
    if arrays is None:
        raise BaselineError("the held-transformation check needs the result evaluate() returned (its arrays hold "
                            "the test activations); a result rebuilt from a dict has none")
    acts = arrays.activations
    pairing = fitted.pair.pairing
    tolerances = dict(tolerances or {})
    tol = _as_tolerance(tolerances.get("activation_mse", tolerances.get("default", Tolerance())))
    stored = {(c["name"], c["direction"]): float(c["value"]) for c in baseline["criteria"]}
    try:
        old = load_transformation(npz_path)
    except TransformFileError as exc:
        raise BaselineError(f"{exc} (baseline transformation; regenerate with --equivtest-force-regen)") from None
    problems = []
    for source, target in (("a", "b"), ("b", "a")):
        key = ("activation_mse", f"{source}->{target}")
        if key not in stored:
            continue
        try:
            from .pairing import TestRows

            test = TestRows(arrays.inputs, dict(acts), dict(arrays.groups), dict(arrays.outputs))
            held = pairing.activation_mse(test, old.predict(acts[source], to=target), source, target)
        except EquivtestError as exc:
            problems.append(f"the baseline's transformation no longer applies [{key[1]}]: {exc}")
            continue
        limit = tol.limit(stored[key], higher_is_better=False)
        if not held <= limit:
            problems.append(
                f"activation_mse [{key[1]}] with the baseline's transformation: baseline {stored[key]:.4g}, "
                f"now {held:.4g}, allowed <= {limit:.4g} (a network's activations changed)"
            )
    return problems


def check_baseline(folder: Path, name: str, fitted, result, *, tolerances: Mapping | None = None,
                   regen: bool = False, artefact_hint: str | None = None) -> BaselineOutcome:
    """Compare ``result`` with the stored baseline, writing it when missing or when ``regen``.

    The stored transformation is applied to the networks' current test activations
    (``result.arrays``) as well; the pytest fixture refuses a result without arrays, so
    that check never drops out there."""
    json_path, npz_path = baseline_paths(Path(folder), name)
    if not json_path.exists():
        write_baseline(Path(folder), name, fitted, result)
        return BaselineOutcome("created", [f"no baseline existed; wrote {json_path} and {npz_path.name}"], json_path)
    baseline = read_baseline(json_path)
    problems = compare(baseline, result, tolerances)
    if getattr(result, "arrays", None) is not None:  # a result rebuilt from a record is compared on its criteria
        problems += compare_held(baseline, npz_path, fitted, result, tolerances)
    if problems and regen:
        write_baseline(Path(folder), name, fitted, result)
        return BaselineOutcome("regenerated", problems + [f"baseline rewritten: {json_path}"], json_path)
    if problems:
        where = f"; artefacts: {artefact_hint}" if artefact_hint else ""
        return BaselineOutcome("regressed", problems + [f"baseline: {json_path}{where}"], json_path)
    return BaselineOutcome("passed", [], json_path)
