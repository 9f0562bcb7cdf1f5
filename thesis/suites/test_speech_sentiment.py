"""Suite speech-sentiment: the thesis's experiment 5 (see equivtest_thesis.experiments.speech_sentiment).

Marked slow like thesis/suites/test_speech.py (its CI profile trains the recogniser and the XLNet
classifier into an empty cache); the ``smoke`` profile runs in every default run
(``tests/test_speech_suites_smoke.py``).
"""

import pytest

from equivtest_thesis.experiments import ladder, speech_sentiment

pytestmark = pytest.mark.slow
TITLE = "Speech sentiment: agreement of the stitched network with its target (cf. thesis section 4.5)"


@pytest.fixture(scope="module")
def outcome(request):
    return speech_sentiment.run(profile="ci", report_dir=request.config.getoption("equivtest_report_dir"))


def _row(outcome):
    table = {t.title: t for t in outcome.tables}[TITLE]
    assert len(table.rows) == 1
    return dict(zip(table.columns, table.rows[0]))


@pytest.mark.xfail(reason="measured (CI profile, recogniser trained on 1,600 phrases): agreement 0.625 against the "
                          "thesis's 0.654 and a constant network's 0.515 (XLNet 48.5% positive on the transcripts, "
                          "stitched 54%); the full profile (`equivtest run speech-sentiment --profile full`, a "
                          "recogniser trained on 6,400 phrases) reaches 0.6625; see README, suite speech-sentiment. "
                          "strict: the day the CI profile passes, this turns red and the marker goes",
                   strict=True)
def test_speech_sentiment_agreement_beats_the_thesis_and_a_constant_network(outcome):
    # the threshold is max(0.654, the target's majority share)
    result = outcome.results[0]
    assert [c.direction for c in result.criteria if c.name == "agreement"] == ["a->b"]
    assert outcome.passed, outcome.failures()


def test_speech_sentiment_reports_positive_rates_and_balance(outcome):
    row = _row(outcome)
    assert 0.0 <= row["target positive"] <= 1.0 and 0.0 <= row["stitched positive"] <= 1.0
    assert 0.0 <= row["target on spoken text"] <= 1.0
    assert row["constant network"] == pytest.approx(max(row["target positive"], 1 - row["target positive"]))
    balance = {t.title: t for t in outcome.tables}["Class balance of the test set"]
    assert [r[0].split(" ")[0] for r in balance.rows] == ["source", "xlnet-small", "wav2vec2-small"]
    assert row["test utterances"] >= 0.9 * speech_sentiment.PROFILES["ci"]["n_test"]


def test_speech_sentiment_agreement_and_the_ladder_hold_against_their_baseline(outcome, equivtest_baseline):
    # a regression fails (an improvement does not): the stitched agreement with XLNet, and the
    # ladder's held-out relative error and stitched agreement per direction (B -> A: NaN, a
    # position map stitches from A into B only; NaN holds only while it stays NaN)
    figures = ladder.figures("speech-sentiment", outcome.results[0], ["agreement"], outcome.verdicts[0])
    equivtest_baseline(None, figures, tolerances=ladder.TOLERANCES)


def test_speech_sentiment_ladder_finds_no_map_from_speech_into_xlnet(outcome):
    # measured (ci, rungs up to affine, 200 kept test utterances, positions paired by the CTC
    # alignment): the affine map leaves 0.90 of XLNet's embedding variance (into A: 0.80), while
    # each network through the same map to itself passes its positive control
    ladder.assert_decided_not_equivalent(outcome)
