"""Suite speech: the thesis's experiment 3 (see equivtest_thesis.experiments.speech).

The CI profile trains both recognisers into an empty cache (about 5 of its 6 minutes), so it
is marked slow; ``tests/test_speech_suites_smoke.py`` runs the same code on the small
``smoke`` profile in every default run. ``equivtest run speech [--profile full]`` runs it
from the command line.
"""

import pytest

from equivtest_thesis.experiments import ladder, speech

pytestmark = pytest.mark.slow
AGREEMENT = "Transcript agreement of the stitched network with its target (cf. thesis section 4.3)"
# untrained, both score 1.0; measured (CI profile): Wav2Vec2 0.570, Speech2Text 0.667
WER_BOUND = 0.75


@pytest.fixture(scope="module")
def outcome(request):
    return speech.run(profile="ci", report_dir=request.config.getoption("equivtest_report_dir"))


def _tables(outcome):
    return {t.title: t for t in outcome.tables}


def _rows(outcome):
    table = _tables(outcome)[AGREEMENT]
    return [dict(zip(table.columns, row)) for row in table.rows]


def test_speech_recognisers_learned_the_phrases(outcome):
    nets = _tables(outcome)["Recognisers (word error rate on held-out phrases)"]
    assert len(nets.rows) == 2
    for name, test_wer, *_ in nets.rows:
        assert test_wer < WER_BOUND, f"{name} has word error rate {test_wer:.3f} on held-out phrases"


@pytest.mark.xfail(reason="measured (CI profile): the stitched transcripts are further from the target's own (WER "
                          "1.86 into Speech2Text, 1.40 into Wav2Vec2) than an empty transcript (1.0) or the target's "
                          "transcripts of other utterances (1.07, 1.12) are; see README, suite speech. strict: the day it holds, this "
                          "turns red and the marker goes", strict=True)
def test_speech_stitched_transcripts_are_closer_to_the_target_than_fluent_guessing(outcome):
    # baselines that ignore the audio: another utterance's transcript, or none (an empty transcript scores WER 1)
    rows = _rows(outcome)
    assert len(rows) == 2
    for row in rows:
        assert row["stitched WER vs. target"] < min(1.0, row["shuffled WER vs. target"]), row


@pytest.mark.xfail(reason="measured (CI profile): word agreement 0.000 into Speech2Text (thesis 0.6971) and 0.000 "
                          "into Wav2Vec2 (thesis 0.8969); see README, suite speech. strict: the day both reach the "
                          "thesis's figures, this turns red and the marker goes", strict=True)
def test_speech_word_agreement_reaches_the_thesis_figures(outcome):
    result = outcome.results[0]
    assert {c.direction for c in result.criteria if c.name == "word_agreement"} == {"a->b", "b->a"}
    assert outcome.passed, outcome.failures()


def test_speech_example_table_like_table_4_3(outcome):
    examples = _tables(outcome)["Example transcripts (cf. thesis Table 4.3)"]
    assert examples.columns[0] == "reference" and len(examples.rows) == 6
    assert all(isinstance(cell, str) for row in examples.rows for cell in row)
    # every stitched transcript was produced and scored against the target's own
    assert all(row["test utterances"] == speech.PROFILES["ci"]["n_test"] for row in _rows(outcome))


def test_speech_agreement_and_the_ladder_hold_against_their_baseline(outcome, equivtest_baseline):
    # a regression fails (an improvement does not): word agreement and exact transcripts per
    # direction, and the ladder's held-out relative error and stitched transcript agreement
    figures = ladder.figures("speech", outcome.results[0], ["word_agreement", "agreement"], outcome.verdicts[0])
    equivtest_baseline(None, figures, tolerances=ladder.TOLERANCES)


def test_speech_ladder_finds_no_map_between_the_recognisers(outcome):
    # measured (ci, rungs up to affine, 100 test utterances, every position a row): both layers
    # are 96 wide, so every rung applies; the best, affine, leaves 0.59 (into Speech2Text) and
    # 0.71 (into Wav2Vec2) of the target's variance, and no stitched transcript of a held-out
    # utterance equals the target's own, while each network's positive control passes
    ladder.assert_decided_not_equivalent(outcome)
