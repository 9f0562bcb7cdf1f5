"""Suite merge: the TransformerAE report's weight merger on the digit zoo (see equivtest_thesis.experiments.merge).

The CI profile runs once per session (about 3-4 minutes on two cores with an empty
cache); ``equivtest run merge --profile full`` runs the full sizes.
"""

import numpy as np
import pytest

from equivtest_thesis.experiments import merge


@pytest.fixture(scope="module")
def outcome(request):
    return merge.run(profile="ci", report_dir=request.config.getoption("equivtest_report_dir"))


def _merges(outcome):
    return [r for r in outcome.results if r.info.get("C1") is not None]


def _column(outcome, network, column="acc C1uC2"):
    table = next(t for t in outcome.tables if t.title.startswith("Held-out merges"))
    i, j = table.columns.index("network"), table.columns.index(column)
    return np.array([row[j] for row in table.rows if row[i] == network])


def test_at_least_five_held_out_merges_with_every_network(outcome):
    assert len(_merges(outcome)) >= 5
    for network in ("parent C1", "parent C2", "predicted", "finetuned", "averaged", "ensemble", "joint"):
        assert len(_column(outcome, network)) == len(_merges(outcome))


def test_fine_tuned_merge_reaches_95_percent_of_the_joint_network(outcome):
    # the bar: at most one epoch of fine-tuning, >= 95% of the jointly trained accuracy
    for result in _merges(outcome):
        result.assert_equivalent(normalised_accuracy={"finetuned": 0.95})


def test_merger_beats_plain_weight_averaging_before_fine_tuning(outcome):
    predicted, averaged = _column(outcome, "predicted"), _column(outcome, "averaged")
    assert predicted.mean() > averaged.mean(), (predicted, averaged)


def test_parents_know_only_their_own_classes(outcome):
    # a sanity check of the zoo: a parent is right on its classes, never on the other set's
    assert (_column(outcome, "parent C1", "acc C1") > 0.9).all()
    assert (_column(outcome, "parent C1", "acc C2") == 0).all()
    assert (_column(outcome, "joint") > 0.9).all()


def test_transformation_between_predicted_and_joint_network_is_reported(outcome):
    fits = [r for r in outcome.results if r.pair.endswith("-transformation")]
    assert fits
    for r in fits:
        for name, direction in (("activation_mse", "a->b"), ("agreement", "a->b"), ("cka", "a<->b")):
            assert np.isfinite(r.value(name, direction))
    if outcome.records:  # the first record carries the suite's tables
        import json

        record = json.loads(outcome.records[0].read_text())
        assert [(t["title"], len(t["rows"])) for t in record["tables"]] == [(t.title, len(t.rows)) for t in outcome.tables]
