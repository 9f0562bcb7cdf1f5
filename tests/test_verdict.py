"""The verdict: true pairs get the right rung, shuffled pairings and one-way maps are told apart,
a failing positive control makes a rung undecidable with the reason, bad input is refused."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from equivtest.errors import EquivtestError, FitConfigError
from equivtest.maps import LADDER, DiffusionMap
from equivtest.verdict import NotEquivalentError, Thresholds, decide, split_by_input

SEEDS = range(4)


def network_rows(seed: int, n_inputs: int = 80, per_input: int = 6, width: int = 24):
    rng = np.random.default_rng(seed)
    a = np.tanh(rng.normal(size=(n_inputs * per_input, width)) @ rng.normal(size=(width, width)) / 3)
    return rng, a, np.repeat(np.arange(n_inputs), per_input)


def true_pairs(rng, a):
    width = a.shape[1]
    rotation, _ = np.linalg.qr(rng.normal(size=(width, width)))
    return {
        "identity": a.copy(),
        "permutation": a[:, rng.permutation(width)],
        "orthogonal": 0.3 * a @ rotation - 2.0,
        "diagonal": a * rng.uniform(0.1, 10, size=width) + rng.normal(size=width),
        "affine": a @ rng.normal(size=(width, width)) + 1.0,
    }


@pytest.mark.parametrize("seed", SEEDS)
def test_a_network_and_its_transformed_copy_are_equivalent_up_to_that_rung(seed):
    rng, a, groups = network_rows(seed)
    for rung, b in true_pairs(rng, a).items():
        verdict = decide(a, b, groups, seed=seed)
        assert verdict.kind == "equivalent" and verdict.up_to == rung, (rung, verdict.text)
        for direction in ("a->b", "b->a"):
            row = verdict.row(direction, rung)
            assert row.passed and row.heldout_rel_error <= 1e-3 and row.null_ratio > 100, row
            assert row.control_rel_error <= 1e-3
        assert verdict.assert_equivalent(up_to=rung) is verdict
        if rung != "identity":
            with pytest.raises(NotEquivalentError, match=rf"not equivalent up to the identity"):
                verdict.assert_equivalent(up_to="identity")


@pytest.mark.parametrize("seed", SEEDS)
def test_a_shuffled_pairing_is_not_equivalent(seed):
    rng, a, groups = network_rows(seed)
    b = a[rng.permutation(len(a))]
    verdict = decide(a, b, groups, seed=seed)
    assert verdict.kind == "not_equivalent", verdict.text
    assert all(r.decidable and not r.passed for r in verdict.rows)
    assert {r.rung for r in verdict.rows} == set(LADDER)  # every rung was tried in both directions
    with pytest.raises(NotEquivalentError) as info:
        verdict.assert_equivalent(up_to="nonlinear")
    assert isinstance(info.value, AssertionError)
    assert "a->b: failed" in str(info.value) and "affine: held-out relative error" in str(info.value)


@pytest.mark.parametrize("seed", SEEDS)
def test_zeroing_three_quarters_of_the_neurons_is_reachable_one_way(seed):
    rng, a, groups = network_rows(seed)
    b = a.copy()
    b[:, rng.permutation(a.shape[1])[: 3 * a.shape[1] // 4]] = 0.0
    verdict = decide(a, b, groups, seed=seed)
    assert verdict.kind == "a_to_b", verdict.text
    ab, ba = verdict.direction("a->b"), verdict.direction("b->a")
    assert ab.status == "passed" and LADDER.index(ab.rung) <= LADDER.index("affine")
    assert ba.status == "failed"
    assert verdict.row("b->a", "affine").heldout_rel_error > 0.1


def test_fewer_rows_than_features_makes_the_affine_rung_undecidable_with_the_reason():
    rng, a, groups = network_rows(0, n_inputs=20, per_input=2, width=64)
    a = rng.normal(size=a.shape)  # full rank: 30 training rows cannot span 64 features
    b = a @ rng.normal(size=(64, 64))
    verdict = decide(a, b, groups, rungs=("affine",))
    assert verdict.kind == "undecidable"
    row = verdict.row("a->b", "affine")
    assert not row.decidable and not row.passed and row.control_rel_error > 1e-3
    assert "fewer training rows (30) than features of A (64)" in row.reason
    assert any("fewer training rows (30) than features of A (64)" in h for h in verdict.diagnostics.hints)
    assert "undecidable" in verdict.text


def test_diffusion_rung_without_neighbourhoods_is_undecidable_and_says_so():
    rng, a, groups = network_rows(0)
    b = a[rng.permutation(len(a))]
    verdict = decide(a, b, groups, rungs=("identity", DiffusionMap(3)), intrinsic_dimension=False)
    assert verdict.kind == "undecidable"
    assert "needs neighbourhood rows" in verdict.row("a->b", "diffusion").reason


def test_diffusion_rung_with_too_few_eigenvectors_for_the_intrinsic_dimension_is_undecidable():
    rng = np.random.default_rng(0)
    n, m = 240, 12
    latent = rng.uniform(-1, 1, size=(n, 4))
    lift = rng.normal(size=(4, 8))
    a = np.tanh(latent @ lift)
    na = np.tanh((latent[:, None, :] + 0.05 * rng.normal(size=(n, m, 4))) @ lift)
    verdict = decide(a, a.copy(), np.arange(n), rungs=(DiffusionMap(3),), neighbourhoods=(na, na.copy()))
    assert verdict.kind == "undecidable"
    assert verdict.diagnostics.intrinsic_dim_a >= 3 and verdict.diagnostics.n_eigenvectors == 3
    reason = verdict.row("a->b", "diffusion").reason
    assert "intrinsic dimension of A's rows" in reason and "raise n_eigenvectors to at least" in reason


def test_too_few_heldout_inputs_is_a_clear_error():
    _, a, groups = network_rows(0, n_inputs=12)
    with pytest.raises(FitConfigError, match=r"only 3 of 12 inputs would be held out.*at least 5.*at least 20"):
        decide(a, a, groups)
    with pytest.raises(FitConfigError, match=r"only 1 inputs would be left to fit on"):
        split_by_input(np.arange(20), heldout=0.95)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_split_never_puts_one_input_on_both_sides(seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 40, size=500)
    train, test = split_by_input(groups, seed=seed)
    assert not set(groups[train]) & set(groups[test])
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(500))
    assert len(set(groups[test])) == 10


def test_the_stitch_callback_gets_heldout_predictions_and_can_fail_a_rung():
    rng, a, groups = network_rows(1)
    b = a[:, rng.permutation(a.shape[1])]
    _, test = split_by_input(groups, heldout=0.25, seed=0)
    calls = []

    def stitch(direction, rung, predicted):
        target = b[test] if direction == "a->b" else a[test]
        calls.append((direction, rung, np.abs(predicted - target).max()))
        return 0.5 if rung == "permutation" else 1.0

    verdict = decide(a, b, groups, stitch=stitch, rungs=("permutation", "affine"))
    assert [(d, r) for d, r, _ in calls] == [("a->b", "permutation"), ("a->b", "affine"),
                                             ("b->a", "permutation"), ("b->a", "affine")]
    assert calls[0][2] == 0.0  # the permutation map predicted the held-out rows exactly
    row = verdict.row("a->b", "permutation")
    assert not row.passed and row.stitched == 0.5 and "stitched metric 0.5 < 0.99" in row.reason
    assert verdict.up_to == "affine"


def test_the_verdict_is_an_immutable_value_with_a_json_record():
    rng, a, groups = network_rows(2)
    verdict = decide(a, a @ rng.normal(size=(24, 24)), groups, thresholds={"affine": Thresholds(max_rel_error=1e-9)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        verdict.kind = "equivalent"
    record = json.loads(json.dumps(verdict.to_dict(), allow_nan=False))
    assert record["kind"] == verdict.kind and record["thresholds"]["affine"]["max_rel_error"] == 1e-9
    assert {r["rung"] for r in record["rows"]} >= {"identity", "affine"}
    row = record["rows"][0]
    assert set(row) >= {"rung", "heldout_rel_error", "null_rel_error", "null_ratio", "control_rel_error",
                        "stitched", "passed", "reason"}
    assert record["diagnostics"]["rows_train"] + record["diagnostics"]["rows_heldout"] == len(a)
    assert "a->b" in record["diagnostics"]["ridge_condition"]
    with pytest.raises(EquivtestError, match=r"thresholds given for rungs \['rotation'\]"):
        decide(a, a, groups, thresholds={"rotation": Thresholds()})
    with pytest.raises(EquivtestError, match=r"up_to='rotation' is not on this verdict's ladder"):
        verdict.assert_equivalent(up_to="rotation")


def test_identical_rows_give_an_infinite_null_ratio_written_as_a_string():
    _, a, groups = network_rows(3)
    verdict = decide(a, a, groups)
    assert verdict.up_to == "identity" and verdict.row("a->b", "identity").null_ratio == float("inf")
    assert verdict.to_dict()["rows"][0]["null_ratio"] == "inf"


def test_diffusion_rung_with_neighbourhoods_recognises_a_rotated_curve():
    from tests.test_maps import _curve

    x, nx = _curve(0, n=200)
    rotation, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    verdict = decide(x, x @ rotation, None, rungs=("identity", DiffusionMap(3)), neighbourhoods=(nx, nx @ rotation))
    assert verdict.kind == "equivalent" and verdict.up_to == "diffusion", verdict.text
    for direction in ("a->b", "b->a"):
        row = verdict.row(direction, "diffusion")  # measured 4.2e-5 and null ratios 4e4-8e4
        assert row.heldout_rel_error <= 1e-3 and row.null_ratio > 100 and row.control_rel_error <= 1e-3
    assert verdict.diagnostics.intrinsic_dim_a == 1 and verdict.diagnostics.neighbourhood_rows == 16


def _counting_fits(monkeypatch) -> list:
    import equivtest.verdict as verdict_module

    calls, real = [], verdict_module._fit_score

    def counted(template, s_tr, t_tr, *rest):
        calls.append(s_tr is t_tr)  # True: a control (source to itself) or its null
        return real(template, s_tr, t_tr, *rest)

    monkeypatch.setattr(verdict_module, "_fit_score", counted)
    return calls


def _figures(verdict):
    return [(r.direction, r.rung, r.heldout_rel_error, r.null_rel_error, r.control_rel_error, r.control_null_ratio)
            for r in verdict.rows]


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_shared_controls_are_fitted_once_and_change_no_figure(seed, monkeypatch):
    rng, a, groups = network_rows(seed)
    pairs = true_pairs(rng, a)
    shuffled = a[rng.permutation(len(a))]
    targets, rungs = (pairs["affine"], shuffled, pairs["diagonal"]), LADDER[:5]  # up to affine: quick
    alone = [decide(a, b, groups, seed=seed, rungs=rungs) for b in targets]
    calls = _counting_fits(monkeypatch)
    controls = {}
    shared = [decide(a, b, groups, seed=seed, rungs=rungs, controls=controls) for b in targets]
    # the same verdicts, figure for figure, whether the controls were fitted here or kept from another call
    assert [_figures(v) for v in shared] == [_figures(v) for v in alone]
    assert [v.kind for v in shared] == ["equivalent", "not_equivalent", "equivalent"]
    # a->b's controls are A's rows against themselves: fitted in the first call, kept for the next two;
    # b->a's differ per call (B's rows are the source there)
    first_a = {r.rung for r in alone[0].rows if r.direction == "a->b"}
    later_a = {r.rung for v in alone[1:] for r in v.rows if r.direction == "a->b"}
    b_side = sum(1 for v in alone for r in v.rows if r.direction == "b->a")
    assert sum(calls) == len(first_a | later_a) + b_side  # each control's own fit (its null fits re-paired rows)
