"""Suite text: the thesis's experiment 4 (see equivtest_thesis.experiments.text).

Runs the CI profile once per session (64 samples, 200 held-out test sentences; the full
profile, ``equivtest run text --profile full``, uses the thesis's 128 and 500).
"""

import pytest

from equivtest_thesis.experiments import ladder, text


@pytest.fixture(scope="module")
def outcome():
    return text.run(profile="ci", report_dir=None)


@pytest.mark.xfail(reason="measured short of the bar (CI profile: agreement 0.585 into MiniLM against a constant "
                          "network's 0.595; 0.520 into XLNet against 0.500, 98% stitched positive); see README, "
                          "suite text. strict: the day both directions beat it, this turns red and the marker goes",
                   strict=True)
def test_text_stitched_networks_beat_a_constant_network_in_both_directions(outcome):
    # agreement with the target must exceed the target's majority-class share on the test set
    result = outcome.results[0]
    assert {c.direction for c in result.criteria if c.name == "agreement"} == {"a->b", "b->a"}
    assert outcome.passed, outcome.failures()


def test_text_test_set_is_balanced_and_tables_are_complete(outcome):
    tables = {t.title: t for t in outcome.tables}
    balance = tables["Class balance of the test set"]
    assert balance.rows[0][1] == pytest.approx(0.5, abs=0.05)
    agree = tables["Agreement of the stitched network with its target (cf. thesis Table 4.4)"]
    assert len(agree.rows) == 2 and all(0.0 <= row[4] <= 1.0 for row in agree.rows)
    assert len(tables["Example outputs (cf. thesis Table 4.3)"].rows) == 6
    # the stitched networks answer every test sentence with a label
    for row in agree.rows:
        assert 0.0 <= row[8] <= 1.0 and row[3] == 200


def test_text_networks_learned_the_task(outcome):
    nets = {t.title: t for t in outcome.tables}["Networks (trained here on Pang-Lee sentence polarity)"]
    for name, _train, _val, test_accuracy in nets.rows:
        assert test_accuracy > 0.6, f"{name} reached only {test_accuracy:.3f} test accuracy"


def test_text_agreement_and_the_ladder_hold_against_their_baseline(outcome, equivtest_baseline):
    # a regression fails (an improvement does not): the stitched agreement with each target, and
    # the ladder's held-out relative error and stitched agreement per direction
    figures = ladder.figures("text", outcome.results[0], ["agreement"], outcome.verdicts[0])
    equivtest_baseline(None, figures, tolerances=ladder.TOLERANCES)


def test_text_ladder_finds_no_map_between_the_two_encoders(outcome):
    # measured (ci, rungs up to affine, 200 test sentences, every position a row): the affine map
    # predicts MiniLM's layer from XLNet's no better than the mean (held-out rel. error 1.00) and
    # XLNet's from MiniLM's barely (0.93), while each network through the same map to itself passes
    # its positive control: a decided "not equivalent", as the thesis's method's chance-level agreement says
    ladder.assert_decided_not_equivalent(outcome, min_heldout_rel_error=0.5)
    assert any(t.title.startswith("Ladder of maps") for t in outcome.tables)
