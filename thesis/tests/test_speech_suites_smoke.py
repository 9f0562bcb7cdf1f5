"""The speech and speech-sentiment suites end to end on their small ``smoke`` profile: networks
trained for 10 epochs on 320 phrases (they barely transcribe), a fit on 6 utterances. This
checks the plumbing in every default run; the figures come from the slow CI profile in
thesis/suites/test_speech.py and thesis/suites/test_speech_sentiment.py."""

import numpy as np
import pytest

from equivtest_thesis.experiments import speech, speech_sentiment


@pytest.fixture(scope="module")
def speech_outcome():
    return speech.run(profile="smoke", report_dir=None)


@pytest.fixture(scope="module")
def sentiment_outcome():
    return speech_sentiment.run(profile="smoke", report_dir=None)


def test_speech_smoke_fits_both_directions_and_fills_its_tables(speech_outcome):
    result = speech_outcome.results[0]
    for name in ("word_agreement", "agreement", "activation_mse"):
        assert {c.direction for c in result.criteria if c.name == name} == {"a->b", "b->a"}
    assert all(0.0 <= result.value("word_agreement", d) <= 1.0 for d in ("a->b", "b->a"))
    tables = {t.title: t for t in speech_outcome.tables}
    agree = tables["Transcript agreement of the stitched network with its target (cf. thesis section 4.3)"]
    # 6 samples, at most 64 positions each (about 50 per second of audio)
    assert [r[1] for r in agree.rows] == [6, 6] and all(6 < r[2] <= 6 * 64 for r in agree.rows)
    assert [r[3] for r in agree.rows] == [12, 12]
    examples = tables["Example transcripts (cf. thesis Table 4.3)"]
    from equivtest_thesis.zoo.speech_phrases import speech_set

    assert [r[0] for r in examples.rows] == speech_set("test", 12).texts[:6]


def test_speech_sentiment_smoke_runs_one_direction_with_positive_rates(sentiment_outcome):
    result = sentiment_outcome.results[0]
    assert [c.direction for c in result.criteria if c.name == "agreement"] == ["a->b"]
    table = [t for t in sentiment_outcome.tables if t.title.startswith("Speech sentiment")][0]
    row = dict(zip(table.columns, table.rows[0]))
    assert row["constant network"] >= 0.5 and np.isfinite(row["stitched positive"])
    # a share of the test phrases: those where the target's label on the spoken words equals its label on the transcript
    matches = row["target on spoken text"] * row["test utterances"]
    assert 0.0 <= row["target on spoken text"] <= 1.0 and matches == pytest.approx(round(matches))
    threshold = result.get("agreement", "a->b").threshold
    assert threshold == pytest.approx(max(0.654, row["constant network"]))


def test_speech_sentiment_refuses_an_unknown_protocol_or_alignment_before_any_work():
    with pytest.raises(ValueError, match="protocol must be one of"):
        speech_sentiment.run(profile="smoke", protocol="improvised")
    with pytest.raises(ValueError, match="align must be one of"):
        speech_sentiment.run(profile="smoke", align="sideways")
