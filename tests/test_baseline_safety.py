"""Baselines never silently wrong: NaN values, the JSON bound to its npz, writes as one
transaction under concurrency and kill -9, and tamper detection with an HMAC key."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from equivtest._io import atomic_write_bytes
from equivtest.baseline import BaselineError, _checksum, check_baseline, compare, read_baseline, write_baseline
from equivtest.criteria import EquivalenceResult, criterion

ROOT = Path(__file__).resolve().parents[1]


def result_with(value: float) -> EquivalenceResult:
    return EquivalenceResult("p", [criterion("activation_mse", "a->b", value)])


def npz_bytes(value: float) -> bytes:
    """What the stand-in transformation of ``value`` saves: a file that says which write it came from."""
    return f"transformation of {value!r}".encode()


class Fitted:
    """Just enough of a FittedPair for write_baseline: a transformation that saves ``value``."""

    def __init__(self, value: float):
        value_bytes = npz_bytes(value)

        class Transformation:
            @staticmethod
            def save(path):
                atomic_write_bytes(path, value_bytes)  # as Transformation.save does

        self.transformation = Transformation


def pair_value(folder: Path) -> float:
    """The value of the baseline pair in ``folder``, checked to be one write's JSON and npz."""
    data = read_baseline(folder / "t.json")
    value = data["criteria"][0]["value"]
    assert (folder / "t.npz").read_bytes() == npz_bytes(value), "the JSON and the npz come from different writes"
    return value


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in ("t.json", "t.npz"))


# -- case 5: a NaN baseline value ---------------------------------------------------------


def test_a_nan_baseline_value_does_not_pass_every_new_value(tmp_path):
    stored = {"criteria": [{"name": "cka", "direction": "a<->b", "value": math.nan, "higher_is_better": True}]}
    (msg,) = compare(stored, EquivalenceResult("p", [criterion("cka", "a<->b", 0.3)]))
    assert "cka [a<->b] changed: baseline nan, now 0.3" in msg and "--equivtest-force-regen" in msg
    assert compare(stored, EquivalenceResult("p", [criterion("cka", "a<->b", math.nan)])) == []

    write_baseline(tmp_path, "t", Fitted(math.nan), result_with(math.nan))  # stored and read back as NaN
    outcome = check_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    assert outcome.status == "regressed" and "changed: baseline nan, now 1" in outcome.messages[0]
    assert check_baseline(tmp_path, "t", Fitted(math.nan), result_with(math.nan)).status == "passed"


def test_an_infinite_baseline_value_holds_only_itself():
    stored = {"criteria": [{"name": "null_ratio", "direction": "a->b", "value": math.inf, "higher_is_better": False}]}
    assert compare(stored, EquivalenceResult("p", [criterion("null_ratio", "a->b", math.inf)])) == []
    (msg,) = compare(stored, EquivalenceResult("p", [criterion("null_ratio", "a->b", math.nan)]))
    assert "changed: baseline inf, now nan" in msg


def test_a_baseline_of_the_old_format_is_refused_and_regen_replaces_it(tmp_path):
    json_path, _ = write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    data = json.loads(json_path.read_text())
    data.pop("sha256")
    data["schema_version"], data["transformation"] = 1, "t.npz"  # as version 1 wrote it: bound to a name only
    json_path.write_text(json.dumps({**data, "sha256": _checksum(data)}))
    with pytest.raises(BaselineError, match="schema version 1, expected 2; regenerate it with --equivtest-force-regen"):
        check_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    outcome = check_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0), regen=True)
    assert outcome.status == "regenerated" and "schema version 1" in outcome.messages[0]
    assert pair_value(tmp_path) == 1.0


# -- case 7: the JSON is bound to the npz's bytes --------------------------------------------


def test_the_json_is_bound_to_its_own_npz(tmp_path):
    write_baseline(tmp_path / "other", "t", Fitted(2.0), result_with(2.0))
    write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    (tmp_path / "t.npz").write_bytes((tmp_path / "other" / "t.npz").read_bytes())  # a pair mixed by hand
    with pytest.raises(BaselineError, match=r"t\.npz is not the transformation this JSON was written with.*force-regen"):
        read_baseline(tmp_path / "t.json")


def test_a_json_naming_another_file_is_refused(tmp_path):
    json_path, _ = write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    data = json.loads(json_path.read_text())
    data.pop("sha256")
    data["transformation"]["file"] = "../t.npz"
    json_path.write_text(json.dumps({**data, "sha256": _checksum(data)}))
    with pytest.raises(BaselineError, match=r"malformed .*'\.\./t\.npz'"):
        read_baseline(json_path)


def test_a_string_value_in_a_baseline_is_refused(tmp_path):
    json_path, _ = write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    data = json.loads(json_path.read_text())
    data.pop("sha256")
    data["criteria"][0]["value"] = "1e-6"
    json_path.write_text(json.dumps({**data, "sha256": _checksum(data)}))
    with pytest.raises(BaselineError, match="malformed.*wrong type"):
        read_baseline(json_path)


def test_leftover_temporaries_of_a_killed_write_are_removed(tmp_path):
    write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    # what atomic_write_bytes leaves when killed before its rename, and a staged npz never committed
    for name in (".t.json.k2x_9q1.tmp", ".t.npz.ab12cd.tmp", "..t.npz.pending.zz9_0.tmp", ".t.npz.pending"):
        (tmp_path / name).write_bytes(b"half")
    (tmp_path / ".t2.json.ab12cd.tmp").write_bytes(b"another baseline's")
    assert pair_value(tmp_path) == 1.0
    assert leftovers(tmp_path) == [".t2.json.ab12cd.tmp"]


WRITER = textwrap.dedent("""
    import os, random, signal, sys, time
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from equivtest import baseline
    from test_baseline_safety import Fitted, result_with

    folder, seed, max_delay = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    kill_at = sys.argv[4] if len(sys.argv) > 4 else None
    rng = random.Random(seed)

    class Slow(Fitted):
        # the delay falls between the npz's bytes and the JSON that names them, as a slow
        # writer's would; any version of write_baseline saves the transformation first
        def __init__(self, value):
            super().__init__(value)
            save = self.transformation.save
            class T:
                @staticmethod
                def save(path):
                    save(path)
                    time.sleep(rng.uniform(0, max_delay))
            self.transformation = T

    if kill_at:
        baseline._step_hook = lambda step: os.kill(os.getpid(), signal.SIGKILL) if step == kill_at else None
    print("ready", flush=True)
    for line in sys.stdin:
        value = float(line)
        time.sleep(rng.uniform(0, max_delay))
        baseline.write_baseline(folder, "t", Slow(value), result_with(value))
        print(value, flush=True)
""").format(tests=str(ROOT / "tests"))


def start_writer(tmp_path: Path, folder: Path, seed: int, max_delay: float, kill_at: str | None = None):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(seed), str(max_delay), *([kill_at] if kill_at else [])],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_two_processes_regenerating_one_baseline_never_leave_a_mixed_pair(tmp_path):
    """Two real processes write one baseline at once, 20 rounds, each writer with random
    delays before it starts and between saving the npz and writing the JSON."""
    folder = tmp_path / "baselines"
    writers = [start_writer(tmp_path, folder, seed, max_delay=0.03) for seed in (1, 2)]
    try:
        for round_ in range(20):
            values = [round_ + 0.1, round_ + 0.2]
            for proc, value in zip(writers, values):
                proc.stdin.write(f"{value}\n")
                proc.stdin.flush()
            assert [float(proc.stdout.readline()) for proc in writers] == values  # both say "written"
            assert pair_value(folder) in values
            assert leftovers(folder) == []
    finally:
        for proc in writers:
            proc.stdin.close()
            proc.wait(timeout=10)


@pytest.mark.parametrize("step, survivor", [("staged", "old"), ("committed", "new"), ("done", "new")])
def test_a_kill_between_the_steps_leaves_the_old_pair_or_the_new_one(tmp_path, step, survivor):
    """Injected: the writer SIGKILLs itself right after the named step of the transaction."""
    folder = tmp_path / "baselines"
    write_baseline(folder, "t", Fitted(1.0), result_with(1.0))
    proc = start_writer(tmp_path, folder, seed=0, max_delay=0.0, kill_at=step)
    proc.stdin.write("2.0\n")
    proc.stdin.close()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    assert pair_value(folder) == {"old": 1.0, "new": 2.0}[survivor]
    assert leftovers(folder) == []  # the reader finished or undid the write


def test_a_writer_killed_at_random_points_leaves_a_whole_pair(tmp_path):
    """A real kill -9 at a random moment of a writer that keeps rewriting the baseline."""
    folder = tmp_path / "baselines"
    write_baseline(folder, "t", Fitted(0.0), result_with(0.0))
    rng = random.Random(7)
    for attempt in range(8):
        before = pair_value(folder)
        proc = start_writer(tmp_path, folder, seed=attempt, max_delay=0.02)
        proc.stdin.write("".join(f"{attempt * 1000 + i}\n" for i in range(1, 200)))
        proc.stdin.flush()
        time.sleep(rng.uniform(0.02, 0.3))
        proc.kill()
        written = [float(line) for line in proc.stdout.read().split()]
        proc.wait(timeout=10)
        first = attempt * 1000 + 1
        # the pair before the kill: the last completed write's, or the one under way
        expected = (written[-1], written[-1] + 1) if written else (before, first)
        assert pair_value(folder) in expected
        assert leftovers(folder) == []


# -- case 8: tamper detection with an HMAC key ----------------------------------------------

KEY = "k" * 32


def forge(json_path: Path, value: float) -> None:
    """Change a value and recompute the SHA-256 checksum, as anyone can."""
    data = json.loads(json_path.read_text())
    data.pop("sha256")
    data.pop("hmac_sha256", None)
    data["criteria"][0]["value"] = value
    json_path.write_text(json.dumps({**data, "sha256": _checksum(data)}))


def test_a_forged_baseline_is_refused_with_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVTEST_HMAC_KEY", KEY)
    json_path, _ = write_baseline(tmp_path, "t", Fitted(1e-6), result_with(1e-6))
    assert "hmac_sha256" in json.loads(json_path.read_text())
    assert pair_value(tmp_path) == 1e-6
    forge(json_path, 1.0)  # would hide a regression up to 1.0
    with pytest.raises(BaselineError, match="carries no HMAC.*EQUIVTEST_HMAC_KEY"):
        read_baseline(json_path)
    data = json.loads(json_path.read_text())
    data["hmac_sha256"] = hashlib.sha256(b"a guess").hexdigest()
    json_path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="HMAC does not match the key"):
        read_baseline(json_path)


def test_a_baseline_signed_with_another_key_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVTEST_HMAC_KEY", KEY)
    json_path, _ = write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    monkeypatch.setenv("EQUIVTEST_HMAC_KEY", "x" * 32)
    with pytest.raises(BaselineError, match="HMAC does not match.*regenerate"):
        read_baseline(json_path)


def test_an_unsigned_baseline_is_refused_once_a_key_is_set(tmp_path, monkeypatch):
    json_path, _ = write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    monkeypatch.setenv("EQUIVTEST_HMAC_KEY", KEY)
    with pytest.raises(BaselineError, match="carries no HMAC"):
        read_baseline(json_path)


def test_without_a_key_checksums_catch_damage_not_forgery(tmp_path):
    """What docs/formats.md says: recomputed checksums pass when no key is set."""
    json_path, _ = write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
    forge(json_path, 5.0)
    assert read_baseline(json_path)["criteria"][0]["value"] == 5.0


def test_a_short_key_is_refused(tmp_path, monkeypatch):
    from equivtest.errors import EquivtestError

    monkeypatch.setenv("EQUIVTEST_HMAC_KEY", "short")
    with pytest.raises(EquivtestError, match="at least 16"):
        write_baseline(tmp_path, "t", Fitted(1.0), result_with(1.0))
