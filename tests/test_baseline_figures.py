"""Figures-only baselines (``fitted=None``): a suite's agreement figures guarded without a
stored transformation, written, verified, compared and regenerated like any baseline."""

from __future__ import annotations

import json

import pytest

from equivtest.baseline import BaselineError, check_baseline, read_baseline, write_baseline
from equivtest.criteria import EquivalenceResult, criterion


def figures(agree: float) -> EquivalenceResult:
    return EquivalenceResult("suite-figures", [criterion("agreement", "b->a", agree)])


class _Fitted:
    class transformation:  # noqa: N801
        @staticmethod
        def save(path):
            path.write_bytes(b"npz placeholder")


def test_figures_only_baseline_is_the_json_alone(tmp_path):
    created = check_baseline(tmp_path, "f", None, figures(0.9))
    assert created.status == "created" and created.messages[0].endswith("f.json (figures only)")
    assert (tmp_path / "f.json").exists() and not (tmp_path / "f.npz").exists()
    assert read_baseline(tmp_path / "f.json")["transformation"] is None
    assert check_baseline(tmp_path, "f", None, figures(0.9)).status == "passed"


def test_figures_regress_one_way_only(tmp_path):
    write_baseline(tmp_path, "f", None, figures(0.9))
    assert check_baseline(tmp_path, "f", None, figures(0.95)).status == "passed"  # an improvement
    outcome = check_baseline(tmp_path, "f", None, figures(0.7))  # beyond the default 10%
    assert outcome.status == "regressed" and "agreement [b->a] regressed" in outcome.messages[0]
    assert check_baseline(tmp_path, "f", None, figures(0.7), regen=True).status == "regenerated"
    assert read_baseline(tmp_path / "f.json")["criteria"][0]["value"] == 0.7


def test_edited_figures_are_refused(tmp_path):
    json_path, npz_path = write_baseline(tmp_path, "f", None, figures(0.9))
    assert npz_path is None
    data = json.loads(json_path.read_text())
    data["criteria"][0]["value"] = 0.1
    json_path.write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="checksum"):
        check_baseline(tmp_path, "f", None, figures(0.9))


def test_a_check_must_match_what_the_baseline_holds(tmp_path):
    write_baseline(tmp_path, "f", None, figures(0.9))
    outcome = check_baseline(tmp_path, "f", _Fitted(), figures(0.9))
    assert outcome.status == "regressed" and "holds no transformation" in outcome.messages[0]
    # regenerated as figures only, a stale transformation of the same name goes with it
    write_baseline(tmp_path, "g", _Fitted(), figures(0.9))
    assert (tmp_path / "g.npz").exists()
    outcome = check_baseline(tmp_path, "g", None, figures(0.9), regen=True)
    assert outcome.status == "regenerated" and "holds a transformation" in outcome.messages[0]
    assert not (tmp_path / "g.npz").exists() and read_baseline(tmp_path / "g.json")["transformation"] is None
