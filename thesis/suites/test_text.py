"""Suite text: the thesis's experiment 4 (see equivtest_thesis.experiments.text).

Runs the CI profile once per session (64 samples, 200 held-out test sentences; the full
profile, ``equivtest run text --profile full``, uses the thesis's 128 and 500).
"""

import pytest

from equivtest_thesis.experiments import text


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
