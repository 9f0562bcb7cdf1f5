"""The speech suites' data and recognisers (equivtest_thesis.zoo.speech_phrases, equivtest_thesis.zoo.speech)."""

import numpy as np
import pytest
import torch

from equivtest.errors import EquivtestError
from equivtest_thesis.zoo import speech as zoo
from equivtest_thesis.zoo.speech_phrases import MAX_WORDS, MIN_WORDS, phrases, speech_set, vocabulary


def test_phrases_use_the_closed_vocabulary_and_test_phrases_are_held_out():
    vocab = set(vocabulary())
    train, test = phrases("train"), phrases("test")
    assert len(vocab) == 200 and len(train) > 5000 and len(test) > 500
    for text, label in train[:500] + test:
        assert MIN_WORDS <= len(text.split()) <= MAX_WORDS and set(text.split()) <= vocab and label in (0, 1)
    assert not {t for t, _ in test} & {t for t, _ in train}
    with pytest.raises(EquivtestError, match="split must be one of"):
        phrases("dev")


def test_speech_set_is_cached_and_reads_back_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVTEST_CACHE", str(tmp_path))
    first = speech_set("test", 5)
    assert list((tmp_path / "speech").glob("*.npz")) and len(first) == 5
    again = speech_set("test", 5)
    assert again.texts == first.texts and again.voices == first.voices
    for a, b in zip(first.audio, again.audio):
        np.testing.assert_array_equal(a, b)  # a cold run returns what a warm run reads (float16 values)
    with pytest.raises(EquivtestError, match="ask for between 1 and"):
        speech_set("test", 10**6)


def test_log_mel_frames_match_wav2vec2_frames():
    wave = torch.randn(1, 16000)
    feats = zoo.log_mel(wave)
    assert feats.shape == (1, 101, 80)
    np.testing.assert_allclose(feats.mean(1).numpy(), 0, atol=1e-4)
    w2v, s2t = zoo.wav2vec2_model().eval(), zoo.speech2text_model().eval()
    with torch.no_grad():
        t_w = w2v(input_values=wave).logits.shape[1]
        t_s = s2t.model.encoder(input_features=feats).last_hidden_state.shape[1]
    assert abs(t_w - t_s) <= 2 and 45 <= t_w <= 51  # one position per 20 ms in both


def test_text_encodings():
    assert zoo.encode_characters("it's a") == [zoo.CHARACTERS.index(c) for c in "it's"] + [1, 2]
    words = zoo.word_tokens()
    assert zoo.encode_words(f"{words[4]} qqqq") == [4, 3, 2]  # unknown word, end token


def test_short_and_empty_audio_are_clear_errors():
    models = {"wav2vec2": (zoo.wav2vec2_model(), {}), "speech2text": (zoo.speech2text_model(), {})}
    nets = zoo.recogniser_networks(models, {"wav2vec2": "wav2vec2.encoder.layers.1",
                                            "speech2text": "model.encoder.layers.1"})
    for net in nets.values():
        with pytest.raises(EquivtestError, match="shorter than .* feature encoder needs for one frame"):
            net.encode(np.zeros(300, dtype=np.float32))
        with pytest.raises(EquivtestError, match="audio of zero length"):
            net.encode(np.zeros(0, dtype=np.float32))
        x = net.encode(np.random.default_rng(0).standard_normal(4000).astype(np.float32))
        assert isinstance(net.answer(x), str) and net.sequences(x[None]).shape[-1] == 96
    with pytest.raises(EquivtestError, match="unknown recogniser"):
        zoo.speech_networks(10, kinds=("whisper",))
