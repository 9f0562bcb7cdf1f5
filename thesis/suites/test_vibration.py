"""Suite vibration: the thesis's experiment 2 on CWRU bearing windows (see equivtest_thesis.experiments.vibration).

One run of the CI profile (every slice length, both directions) is shared by the tests
below; ``equivtest run vibration --profile full`` runs the thesis's sizes.
"""

from pathlib import Path

import pytest

from equivtest_thesis.experiments import ladder, vibration


@pytest.fixture(scope="module")
def outcome(request):
    report_dir = request.config.getoption("equivtest_report_dir")
    return vibration.run(profile="ci", report_dir=report_dir)


def _rows(outcome, target):
    table = next(t for t in outcome.tables if f"into the {target}" in t.title)
    return {row[0]: dict(zip(table.columns, row)) for row in table.rows}


def test_tables_have_every_slice_length_in_both_directions(outcome):
    assert [r.pair for r in outcome.results] == [f"vibration-p{p}" for p in vibration.SLICE_LENGTHS]
    for target in ("lstm", "transformer"):
        rows = _rows(outcome, target)
        assert list(rows) == [f"{target} (own)"] + [f"stitched, p={p}" for p in vibration.SLICE_LENGTHS]
        for row in rows.values():
            assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["TNR"] <= 1.0


def test_the_untouched_networks_score_what_their_training_recorded(outcome):
    # The "own" rows are recomputed from the networks' outputs on the test windows;
    # they must equal the accuracy stored when the networks were trained.
    from equivtest_thesis.zoo.vibration import vibration_networks

    _, _, info = vibration_networks()
    n_test = len(info["splits"].test.y)
    for target in ("lstm", "transformer"):
        own = _rows(outcome, target)[f"{target} (own)"]["accuracy"]
        # the training record holds a float32 mean: compare counts of correct windows
        assert round(own * n_test) == round(info["networks"][target]["test_accuracy"] * n_test)


def test_accuracy_drop_criteria_equal_the_tables(outcome):
    for result, p in zip(outcome.results, vibration.SLICE_LENGTHS):
        for target, direction in (("lstm", "b->a"), ("transformer", "a->b")):
            rows = _rows(outcome, target)
            drop = rows[f"{target} (own)"]["accuracy"] - rows[f"stitched, p={p}"]["accuracy"]
            assert result.value("accuracy_drop", direction) == pytest.approx(drop)


def test_stitched_into_the_lstm_loses_at_most_0_01_at_every_slice_length(outcome):
    # the LSTM bar, read one-sided: no accuracy lost. Measured (ci): drops -0.079, -0.065,
    # -0.049, -0.038: the stitched networks are MORE accurate than the LSTM, with agreement
    # 0.90-0.91 (docs/suites/vibration.md on what that means); that agreement is guarded below
    for result in outcome.results:
        assert result.value("accuracy_drop", "b->a") <= vibration.MAX_DROP["lstm"], result.pair


@pytest.mark.parametrize("p", vibration.SLICE_LENGTHS)
def test_agreement_and_the_ladder_hold_against_their_baseline(outcome, equivtest_baseline, p, networks, request):
    # a regression fails (an improvement does not): each direction's agreement with its target
    # and accuracy drop (into the LSTM: the stitched accuracy against the LSTM's own), and the
    # ladder's held-out relative error and stitched agreement, per slice length
    i = vibration.SLICE_LENGTHS.index(p)
    figures = ladder.figures(f"vibration-p{p}", outcome.results[i], ["agreement", "accuracy_drop"],
                             outcome.verdicts[i])
    equivtest_baseline(None, figures, tolerances=ladder.TOLERANCES, name=_baseline_name(request, networks))


@pytest.fixture(scope="module")
def networks():
    """The suite's networks' fingerprints. Training is seeded and single-threaded, so one
    machine always trains the same weights; a CPU whose math library runs other SIMD kernels
    (AVX2 against AVX-512) trains another transformer (the LSTM comes out the same), and the
    guarded figures move by up to 0.14 (docs/suites/vibration.md, "Networks trained on
    another CPU"): a baseline holds for the networks it was recorded with."""
    from equivtest_thesis.zoo.cache import fingerprint
    from equivtest_thesis.zoo.vibration import vibration_networks

    lstm, transformer, _ = vibration_networks()
    return {"lstm": fingerprint(lstm), "transformer": fingerprint(transformer)}


def _baseline_name(request, networks: dict) -> str:
    """The baseline of these networks (named by their fingerprints), or a skip that says why there is none."""
    import json

    recorded = json.loads((Path(__file__).parent / "test_vibration" / "networks.json").read_text())
    if networks not in [r["fingerprints"] for r in recorded["recorded"]] and not request.config.getoption(
            "equivtest_force_regen"):
        pytest.skip(f"no baseline for these networks {networks}: the suite's baselines hold for the networks "
                    f"they were recorded with ({', '.join(r['cpu'] for r in recorded['recorded'])}), and this "
                    "machine trained others (see docs/suites/vibration.md); the suite's bars above still run. "
                    "Record them with --equivtest-force-regen and thesis/tools/record_networks.py vibration")
    return f"{request.node.name}-{networks['lstm']}-{networks['transformer']}".replace("[", "_").replace("]", "_")


def test_the_ladder_finds_no_map_between_the_lstm_and_the_transformer(outcome):
    # measured (ci, rungs up to affine): at every p the affine map's held-out relative error is
    # 0.60-0.91 and its null ratio below 2, while each network's positive control (itself through
    # the same map) passes: a decided "not equivalent", not an undecidable one. The slice-wise
    # maps stitch as well as the thesis's method does (agreement 0.76-0.92), far from 0.99.
    assert len(outcome.verdicts) == len(vibration.SLICE_LENGTHS)
    for verdict, result in zip(outcome.verdicts, outcome.results):
        assert verdict.kind == "not_equivalent", (result.pair, verdict.text)
        assert result.info["verdict_kind"] == "not_equivalent"
        for direction in ("a->b", "b->a"):
            row = ladder.deciding_row(verdict, direction)
            assert row.decidable and row.control_rel_error < 1e-3 and row.heldout_rel_error > 0.1, row


def test_stitched_into_the_transformer_beats_the_thesis_best_drop(outcome):
    # measured (ci): best drop 0.087 at p = 10 (thesis: 0.123 at p = 10)
    assert vibration.best_drops(outcome)["transformer"] < vibration.MAX_DROP["transformer"]


def test_every_fit_keeps_one_connected_kernel_graph_for_the_transformer(outcome):
    # the LSTM at p = 1 (a scalar per row) still has a few pieces: reported, not asserted
    for result in outcome.results:
        assert result.value("kernel_components", "b") == 1.0, result.pair
        if result.pair != "vibration-p1":
            assert result.value("kernel_components", "a") == 1.0, result.pair


@pytest.mark.xfail(strict=True, reason=(
    "the issue's aim, a drop below 0.05 into the transformer, is not reached: best 0.087 (ci profile, p = 10); "
    "a supervised k-nearest-neighbour or ridge map of the same slices reaches 0.08-0.10 (README, suite vibration)"))
def test_stitched_into_the_transformer_reaches_the_aim_of_0_05(outcome):
    assert vibration.best_drops(outcome)["transformer"] < vibration.AIM_DROP["transformer"]


@pytest.mark.xfail(strict=True, reason=(
    "at p = 1 the stitched transformer drops 0.199, the thesis's 0.187 (ci profile); p = 25, 10 and 2 do "
    "better than the thesis. strict: this turns red the day every slice length matches the thesis"))
def test_every_fit_meets_its_thresholds(outcome):
    failures = [f for r in outcome.results for f in r.failures()]
    assert not failures, "\n".join(str(f) for f in failures)
