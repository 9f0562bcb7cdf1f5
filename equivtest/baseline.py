"""Baselines: a fitted transformation and its criteria, kept beside the tests.

A baseline is two files, ``NAME.json`` (criteria, checksum, and the SHA-256 of the
npz's bytes) and ``NAME.npz`` (the transformation, see :mod:`equivtest.persist`).
``check_baseline`` compares a new result against it criterion by criterion, in the
manner of pytest-regressions: a missing baseline is written and the check fails once,
naming the file; a regression beyond tolerance fails with the old and new values;
files are rewritten only when asked (``regen``), and never silently.

The pair is written as one transaction, under an exclusive lock on the folder
(``flock``): the new npz is staged as ``.NAME.npz.pending``; the new JSON, which names
the staged bytes' SHA-256, replaces the old one (the commit); the staged npz then
replaces the old npz. Every reader takes the same lock and first finishes or undoes an
interrupted write: a pending npz whose hash the JSON names is moved into place, any
other pending npz and any temporary file of the pair are deleted. So a reader sees
the old pair or the new one, whatever process died at whatever point. The format and
what its checksums do and do not protect against: docs/formats.md.

A baseline may also hold **figures only** (``fitted=None``): the JSON alone, its
``transformation`` null, for figures that come from no single fitted transformation (a
suite's agreement over several fits, a ladder's verdict). It is written, verified,
compared and regenerated the same way; there is no stored map to apply.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Mapping

from ._io import HMAC_KEY_ENV, atomic_write_bytes, sign, signature_problem
from .errors import EquivtestError

SCHEMA = "equivtest.baseline"
SCHEMA_VERSION = 2
REGEN = "--equivtest-force-regen"


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


# -- the pair as one transaction -------------------------------------------------------

# Called with "staged" (pending npz written), "committed" (JSON replaced) and "done"
# (npz moved into place); tests set it to delay or kill a writer between the steps.
_step_hook = None


def _step(name: str) -> None:
    if _step_hook is not None:
        _step_hook(name)


def _pending(folder: Path, name: str) -> Path:
    return folder / f".{name}.npz.pending"


def _leftover_temporaries(folder: Path, name: str) -> list[Path]:
    """Temporary files of this pair's writes (atomic_write_bytes's ``.TARGET.xxxx.tmp``)."""
    pattern = re.compile(rf"\.\.?{re.escape(name)}\.(json|npz|npz\.pending)\.[a-z0-9_]+\.tmp")
    return [p for p in folder.iterdir() if pattern.fullmatch(p.name)]


@contextlib.contextmanager
def _locked(folder: Path):
    """An exclusive lock on ``folder`` for the whole block (POSIX ``flock``; released on exit
    or when the process dies). Where ``fcntl`` is missing (Windows) there is no lock."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _recover(folder: Path, name: str) -> None:
    """Finish or undo a write that was interrupted (call with the folder locked)."""
    json_path, npz_path = baseline_paths(folder, name)
    for leftover in _leftover_temporaries(folder, name):
        leftover.unlink(missing_ok=True)
    pending = _pending(folder, name)
    if not pending.exists():
        return
    try:
        recorded = json.loads(json_path.read_text())["transformation"]["sha256"]
    except Exception:  # no JSON, or not one this version wrote: nothing committed the pending npz
        recorded = None
    if recorded is not None and recorded == _sha256_file(pending):
        os.replace(pending, npz_path)  # the JSON was committed: finish the write
        _fsync_dir(folder)
    else:
        pending.unlink()  # the writer died before its commit: the old pair stands


def _criterion_entry(c) -> dict:
    return {"name": c.name, "direction": c.direction, "value": float(c.value), "higher_is_better": c.higher_is_better}


def _write(folder: Path, name: str, fitted, result) -> tuple[Path, Path | None]:
    """The transaction itself (call with the folder locked and recovered); ``fitted=None``
    writes a figures-only baseline (the JSON alone; a stale npz of the name is removed)."""
    json_path, npz_path = baseline_paths(folder, name)
    payload = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "pair": result.pair,
               "criteria": [_criterion_entry(c) for c in result.criteria], "transformation": None}
    if fitted is None:
        _commit_json(json_path, payload)
        npz_path.unlink(missing_ok=True)
        _fsync_dir(folder)
        _step("done")
        return json_path, None
    pending = _pending(folder, name)
    try:
        fitted.transformation.save(pending)
        payload["transformation"] = {"file": npz_path.name, "sha256": _sha256_file(pending)}
        _step("staged")
        _commit_json(json_path, payload)
    except BaseException:
        pending.unlink(missing_ok=True)  # not committed: the old pair stands
        raise
    _fsync_dir(folder)
    _step("committed")
    os.replace(pending, npz_path)
    _fsync_dir(folder)
    _step("done")
    return json_path, npz_path


def _commit_json(json_path: Path, payload: dict) -> None:
    document = {**payload, "sha256": _checksum(payload)}
    signature = sign(payload)
    if signature is not None:
        document["hmac_sha256"] = signature
    atomic_write_bytes(json_path, json.dumps(document, indent=2).encode())


def write_baseline(folder: Path, name: str, fitted, result) -> tuple[Path, Path | None]:
    """Write ``NAME.json`` and ``NAME.npz`` as one transaction (see the module's docstring);
    ``fitted=None``: the JSON alone (figures only)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        _recover(folder, name)
        return _write(folder, name, fitted, result)


def _verified_json(json_path: Path) -> dict:
    fix = f"regenerate it with {REGEN} (do not edit baselines by hand)"
    try:
        data = json.loads(Path(json_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {json_path} cannot be read ({exc}); {fix}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise BaselineError(f"{json_path} is not an equivtest baseline; {fix}")
    if data.get("schema_version") != SCHEMA_VERSION:
        raise BaselineError(f"{json_path} has schema version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}; {fix}")
    stored, signature = data.pop("sha256", None), data.pop("hmac_sha256", None)
    if stored != _checksum(data):
        raise BaselineError(f"baseline {json_path} does not match its checksum: it was edited or damaged; {fix}")
    problem = signature_problem(data, signature)
    if problem:
        raise BaselineError(
            f"baseline {json_path} is refused: {problem}. If you trust the tests' current results, regenerate it "
            f"with {REGEN} and the right key in {HMAC_KEY_ENV}"
        )
    try:
        for c in data["criteria"]:
            if not (isinstance(c["name"], str) and isinstance(c["direction"], str)
                    and isinstance(c["value"], Real) and not isinstance(c["value"], bool)
                    and isinstance(c["higher_is_better"], bool)):
                raise TypeError(f"criterion {c!r} has a field of the wrong type")
        transformation = data["transformation"]
        if transformation is None:  # figures only
            return data
        if transformation["file"] != Path(json_path).with_suffix(".npz").name:
            raise ValueError(f"it names the transformation file {transformation['file']!r}")
        if not (isinstance(transformation["sha256"], str) and len(transformation["sha256"]) == 64):
            raise ValueError("its transformation hash is not a SHA-256")
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"baseline {json_path} is malformed ({exc}); {fix}") from None
    return data


def _read_pair(json_path: Path) -> tuple[dict, bytes | None]:
    """The baseline's JSON, verified, and the bytes of its npz, checked against the hash the
    JSON records; both read under the folder's lock, so they belong to one write. A
    figures-only baseline gives ``None`` for the bytes."""
    json_path = Path(json_path)
    folder, name = json_path.parent, json_path.name.removesuffix(".json")
    fix = f"regenerate the baseline with {REGEN}"
    if not json_path.exists():
        raise BaselineError(f"no baseline at {json_path}; run the test once to write it, or {fix}")
    with _locked(folder):
        _recover(folder, name)
        data = _verified_json(json_path)
        if data["transformation"] is None:  # figures only
            return data, None
        npz_path = folder / data["transformation"]["file"]
        try:
            npz = npz_path.read_bytes()
        except OSError as exc:
            raise BaselineError(f"baseline {json_path}: its transformation {npz_path.name} cannot be read ({exc}); {fix}") from None
    found = hashlib.sha256(npz).hexdigest()
    if found != data["transformation"]["sha256"]:
        raise BaselineError(
            f"baseline {json_path}: {npz_path.name} is not the transformation this JSON was written with (its "
            f"SHA-256 is {found[:12]}..., the JSON records {data['transformation']['sha256'][:12]}...); the two "
            f"files were replaced or damaged separately; {fix}"
        )
    return data, npz


def read_baseline(json_path: Path) -> dict:
    """Load and verify a baseline's JSON and its binding to the npz; any damage is a :class:`BaselineError`."""
    return _read_pair(json_path)[0]


def compare(baseline: dict, result, tolerances: Mapping | None = None) -> list[str]:
    """One message per criterion that regressed beyond its tolerance (empty: no regression).

    A baseline value that is not finite (NaN: the criterion was undefined when the
    baseline was written) matches only the same value; any other new value is a change.
    """
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
        old_value, new_value = float(old["value"]), float(new.value)
        if not math.isfinite(old_value):
            if old_value == new_value or (math.isnan(old_value) and math.isnan(new_value)):
                continue
            problems.append(
                f"{old['name']} [{old['direction']}] changed: baseline {old_value}, now {new_value:.4g}; a baseline "
                f"of {old_value} (the criterion was not finite when the baseline was written) holds only while "
                f"the value stays {old_value}. If the new value is right, accept it with {REGEN}"
            )
            continue
        limit = tol.limit(old_value, bool(old["higher_is_better"]))
        worse = new_value < limit if old["higher_is_better"] else new_value > limit
        if worse or math.isnan(new_value):
            change = (new_value - old_value) / abs(old_value) * 100 if old_value else math.inf
            problems.append(
                f"{old['name']} [{old['direction']}] regressed: baseline {old_value:.4g}, now {new_value:.4g} "
                f"({change:+.1f}%), allowed {'>=' if old['higher_is_better'] else '<='} {limit:.4g}"
            )
    return problems


def load_bound_transformation(baseline: dict, npz_path: Path, npz_bytes: bytes | None = None):
    """The baseline's transformation, from bytes whose SHA-256 is the one its JSON records.

    ``npz_bytes``: the npz as already read with the JSON (by :func:`check_baseline`);
    otherwise the file is read now, under the folder's lock, and checked the same way.
    """
    from .errors import TransformFileError
    from .persist import load_transformation_bytes

    npz_path = Path(npz_path)
    if npz_bytes is None:
        with _locked(npz_path.parent):
            _recover(npz_path.parent, npz_path.name.removesuffix(".npz"))
            try:
                npz_bytes = npz_path.read_bytes()
            except OSError as exc:
                raise BaselineError(f"baseline transformation {npz_path} cannot be read ({exc}); regenerate with {REGEN}") from None
    recorded = baseline.get("transformation", {}).get("sha256")
    if hashlib.sha256(npz_bytes).hexdigest() != recorded:
        raise BaselineError(
            f"{npz_path} is not the transformation its baseline JSON was written with (the SHA-256 differs); "
            f"regenerate with {REGEN}"
        )
    try:
        return load_transformation_bytes(npz_bytes, npz_path)
    except TransformFileError as exc:
        raise BaselineError(f"{exc} (baseline transformation; regenerate with {REGEN})") from None


def compare_held(baseline: dict, npz_path: Path, fitted, result, tolerances: Mapping | None = None, *,
                 npz_bytes: bytes | None = None) -> list[str]:
    """Apply the *baseline's* transformation to the current networks' test activations
    (those of ``result``'s own evaluation).

    Refitting absorbs any change that keeps the two representations equivalent (a
    retrained or perturbed network usually does), so the refit criteria alone cannot
    tell that a network changed. The stored transformation can: if either network now
    computes different activations, the old map no longer lands on them. Its activation
    MSE is held to the baseline's activation MSE, with the same tolerance.
    """
    arrays = getattr(result, "arrays", None)
    if arrays is None:
        raise BaselineError("the held-transformation check needs the result evaluate() returned (its arrays hold "
                            "the test activations); a result rebuilt from a dict has none")
    acts = arrays.activations
    pairing = fitted.pair.pairing
    tolerances = dict(tolerances or {})
    tol = _as_tolerance(tolerances.get("activation_mse", tolerances.get("default", Tolerance())))
    stored = {(c["name"], c["direction"]): float(c["value"]) for c in baseline["criteria"]}
    old = load_bound_transformation(baseline, npz_path, npz_bytes)
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
    that check never drops out there. ``fitted=None`` checks a figures-only baseline: the
    criteria alone; a baseline and a check must agree on whether a transformation is held."""
    folder = Path(folder)
    json_path, npz_path = baseline_paths(folder, name)
    folder.mkdir(parents=True, exist_ok=True)
    with _locked(folder):
        _recover(folder, name)
        if not json_path.exists():
            _write(folder, name, fitted, result)
            wrote = f"{json_path} and {npz_path.name}" if fitted is not None else f"{json_path} (figures only)"
            return BaselineOutcome("created", [f"no baseline existed; wrote {wrote}"], json_path)
    try:
        baseline, npz_bytes = _read_pair(json_path)
        problems = compare(baseline, result, tolerances)
        if (npz_bytes is None) != (fitted is None):
            problems.append(f"the baseline {'holds no' if npz_bytes is None else 'holds a'} transformation and the "
                            f"check gives {'one' if fitted is not None else 'none'}; regenerate it with {REGEN}")
        elif fitted is not None and getattr(result, "arrays", None) is not None:
            # a result rebuilt from a record is compared on its criteria
            problems += compare_held(baseline, npz_path, fitted, result, tolerances, npz_bytes=npz_bytes)
    except BaselineError as exc:
        if not regen:
            raise
        problems = [f"the baseline could not be used: {exc}"]  # regen is how its message says to fix it
    if problems and regen:
        write_baseline(folder, name, fitted, result)
        return BaselineOutcome("regenerated", problems + [f"baseline rewritten: {json_path}"], json_path)
    if problems:
        where = f"; artefacts: {artefact_hint}" if artefact_hint else ""
        return BaselineOutcome("regressed", problems + [f"baseline: {json_path}{where}"], json_path)
    return BaselineOutcome("passed", [], json_path)


# -- a sweep's baseline ----------------------------------------------------------------------

# a rung index may not grow at all (a less rigid rung is a regression); the figures get the tolerance
SWEEP_TOLERANCES = {"rung": Tolerance(worse_by=0.0, atol=0.0)}


@dataclass(frozen=True)
class _Criterion:
    name: str
    direction: str
    value: float
    higher_is_better: bool


@dataclass(frozen=True)
class SweepCriteria:
    """A sweep's per-layer verdicts as baseline criteria: per cell and direction, ``rung`` (index of
    the passing rung on the ladder; the ladder's length when none passed; lower is better),
    ``rel_error`` (lower is better) and ``stitched`` (higher is better); ``direction`` names the cell,
    ``"LAYER_A|LAYER_B|a->b"``."""

    pair: str
    criteria: tuple

    @classmethod
    def of(cls, sweep, pair: str) -> "SweepCriteria":
        found = []
        for cell in sweep.cells:
            for d in cell.directions:
                where = f"{cell.layer_a}|{cell.layer_b}|{d.direction}"
                rung = sweep.rungs.index(d.rung) if d.rung is not None else len(sweep.rungs)
                found.append(_Criterion("rung", where, float(rung), False))
                for name, higher in (("rel_error", False), ("stitched", True)):
                    value = getattr(d, name)
                    if value is not None:
                        found.append(_Criterion(name, where, float(value), higher))
        return cls(pair, tuple(found))


def check_sweep_baseline(folder: Path, name: str, sweep, pair: str, *, tolerances: Mapping | None = None,
                         regen: bool = False, artefact_hint: str | None = None) -> BaselineOutcome:
    """Compare a :class:`~equivtest.sweep_result.SweepResult` with its stored baseline (``NAME.json``,
    the hardened format above, without a transformation file), writing it when missing or when
    ``regen``. A layer whose rung got less rigid fails; so does a held-out error that rose, or a
    stitched score that fell, beyond ``tolerances`` (as for :func:`compare`; default 10%)."""
    tolerances = {**SWEEP_TOLERANCES, **dict(tolerances or {})}
    return check_baseline(folder, name, None, SweepCriteria.of(sweep, pair), tolerances=tolerances, regen=regen,
                          artefact_hint=artefact_hint)


def write_sweep_baseline(folder: Path, name: str, sweep, pair: str) -> Path:
    """Write (or rewrite) a sweep's baseline; returns the JSON's path."""
    return write_baseline(folder, name, None, SweepCriteria.of(sweep, pair))[0]
