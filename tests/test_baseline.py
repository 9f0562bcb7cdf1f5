"""Baselines: comparison rules and safe loading.

The plugin's create/pass/regress/regen cycle runs on the thesis's 1d pair:
thesis/tests/test_baseline_1d.py.
"""

from __future__ import annotations

import json

import pytest

from equivtest.baseline import BaselineError, Tolerance, check_baseline, compare, read_baseline, write_baseline
from equivtest.criteria import EquivalenceResult, criterion


def result_with(mse_ab: float, agree: float = 0.9) -> EquivalenceResult:
    return EquivalenceResult("p", [criterion("activation_mse", "a->b", mse_ab), criterion("agreement", "a->b", agree)])


def stored(mse_ab: float, agree: float = 0.9) -> dict:
    return {"criteria": [
        {"name": "activation_mse", "direction": "a->b", "value": mse_ab, "higher_is_better": False},
        {"name": "agreement", "direction": "a->b", "value": agree, "higher_is_better": True},
    ]}


def test_relative_tolerance_in_the_bad_direction_only():
    assert compare(stored(1e-6), result_with(1.09e-6)) == []  # default: 10% worse allowed
    assert compare(stored(1e-6), result_with(1e-9)) == []  # better is always fine
    (msg,) = compare(stored(1e-6), result_with(1.2e-6))
    assert "activation_mse [a->b] regressed: baseline 1e-06, now 1.2e-06 (+20.0%)" in msg
    (msg,) = compare(stored(1e-6, agree=0.9), result_with(1e-6, agree=0.7))
    assert "agreement [a->b] regressed" in msg and ">=" in msg


def test_per_criterion_and_default_tolerances():
    assert compare(stored(1e-6), result_with(1.9e-6), {"activation_mse": {"worse_by": 1.0}}) == []
    assert compare(stored(1e-6), result_with(1.9e-6), {"default": 0.95}) == []
    assert compare(stored(0.0), result_with(1e-13), {"default": Tolerance(worse_by=0, atol=1e-12)}) == []


def test_a_criterion_that_disappeared_is_reported():
    only = EquivalenceResult("p", [criterion("activation_mse", "a->b", 1e-6)])
    (msg,) = compare(stored(1e-6), only)
    assert "agreement [a->b] is in the baseline but no longer computed" in msg


def test_negative_tolerance_is_refused():
    from equivtest.errors import EquivtestError

    with pytest.raises(EquivtestError, match="non-negative"):
        Tolerance(worse_by=-0.1)


class _Fitted:
    """Just enough of a FittedPair for write_baseline: a transformation that saves."""

    class transformation:  # noqa: N801
        @staticmethod
        def save(path):
            path.write_bytes(b"npz placeholder")


def test_missing_baseline_is_written_and_reported(tmp_path):
    outcome = check_baseline(tmp_path, "t", _Fitted(), result_with(1e-6))
    assert outcome.status == "created" and (tmp_path / "t.json").exists() and (tmp_path / "t.npz").exists()
    assert check_baseline(tmp_path, "t", _Fitted(), result_with(1e-6)).status == "passed"


def test_regression_is_not_overwritten_without_regen(tmp_path):
    write_baseline(tmp_path, "t", _Fitted(), result_with(1e-6))
    before = (tmp_path / "t.json").read_bytes()
    outcome = check_baseline(tmp_path, "t", _Fitted(), result_with(1e-3), artefact_hint="reports/x")
    assert outcome.status == "regressed" and "reports/x" in outcome.messages[-1]
    assert (tmp_path / "t.json").read_bytes() == before
    assert check_baseline(tmp_path, "t", _Fitted(), result_with(1e-3), regen=True).status == "regenerated"
    assert read_baseline(tmp_path / "t.json")["criteria"][0]["value"] == 1e-3


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d["criteria"][0].__setitem__("value", 1.0),  # hand-edited value
        lambda d: d.__setitem__("schema_version", 99),
        lambda d: d.pop("sha256"),
        lambda d: d.__setitem__("schema", "something else"),
    ],
)
def test_edited_baseline_gives_a_clear_error(tmp_path, damage):
    json_path, _ = write_baseline(tmp_path, "t", _Fitted(), result_with(1e-6))
    data = json.loads(json_path.read_text())
    damage(data)
    json_path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="force-regen"):
        read_baseline(json_path)


def test_corrupted_baseline_gives_a_clear_error(tmp_path):
    json_path, _ = write_baseline(tmp_path, "t", _Fitted(), result_with(1e-6))
    json_path.write_bytes(json_path.read_bytes()[:40])
    with pytest.raises(BaselineError, match="cannot be read"):
        read_baseline(json_path)
