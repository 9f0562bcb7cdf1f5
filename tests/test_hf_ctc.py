"""Greedy CTC decoding with emission frames, the CTC position map, and position maps in fit_hf."""

import numpy as np
import pytest
import torch

from equivtest import FitConfig, GaussianNeighbourhood
from equivtest.adapters.hf import HFNetwork, HFPair, HFSampling, ctc_alignment, ctc_collapse, ctc_greedy, fit_hf
from equivtest.adapters.hf.ctc import token_frames
from equivtest.errors import EquivtestError

from .test_hf import tiny_roberta, tiny_wav2vec2, word_tokenizer

transformers = pytest.importorskip("transformers")
VOCAB = ["<pad>", "|", "a", "b", "t", "h", "e"]


def test_ctc_collapse_merges_repeats_drops_blanks_and_keeps_each_characters_frame():
    #        frame:  0  1  2  3  4  5  6  7  8  9 10 11
    ids = [0, 4, 4, 5, 0, 6, 1, 1, 0, 2, 2, 1]
    text, frames = ctc_collapse(ids, VOCAB)
    assert text == "the a"
    assert frames.tolist() == [1, 3, 5, 6, 9]  # the trailing delimiter is dropped
    # leading and doubled delimiters give no spaces; a blank between two equal ids repeats the character
    text, frames = ctc_collapse([1, 2, 0, 2, 1, 0, 1, 3], VOCAB)
    assert (text, frames.tolist()) == ("aa b", [1, 3, 4, 7])
    assert ctc_collapse([0, 0, 1], VOCAB)[0] == ""


def test_ctc_greedy_writes_the_collapsed_transcript():
    logits = torch.full((1, 12, len(VOCAB)), -5.0)
    for f, i in enumerate([0, 4, 4, 5, 0, 6, 1, 1, 0, 2, 2, 1]):
        logits[0, f, i] = 5.0

    class Out:
        pass

    def model(**_):
        out = Out()
        out.logits = logits
        return out

    predict = ctc_greedy(VOCAB)
    assert predict(model, {}) == "the a"
    assert predict.ctc == (VOCAB, 0, "|")


def test_token_frames_puts_each_token_on_its_first_characters_frame():
    tok = word_tokenizer()  # word-level, no special tokens
    text, frames = "the film was good", np.arange(17) * 2
    assert token_frames(tok, text, frames, 40).tolist() == [0, 8, 18, 26]
    with pytest.raises(EquivtestError, match="emission frames for a transcript"):
        token_frames(tok, text, frames[:-1], 40)


def test_ctc_alignment_needs_a_ctc_decoder_and_gives_one_frame_per_token():
    asr = HFNetwork(tiny_wav2vec2(), "wav2vec2.encoder.layers.1", "audio", features=6)
    with pytest.raises(EquivtestError, match="does not decode with ctc_greedy"):
        ctc_alignment(asr, word_tokenizer())
    vocab = ["<pad>", "|", "t", "h", "e", "a", "f", "i"]
    asr = HFNetwork(tiny_wav2vec2(), "wav2vec2.encoder.layers.1", "audio", features=6, predict=ctc_greedy(vocab))
    align = ctc_alignment(asr, word_tokenizer())
    rng = np.random.default_rng(3)
    aligned = 0
    for _ in range(5):
        wave = rng.standard_normal(3200).astype(np.float32)
        text = asr.answer(asr.encode(wave))
        n_frames = asr.sequences(asr.encode(wave)[None]).shape[1]
        n_tokens = len(word_tokenizer()(text)["input_ids"])
        index = align(wave, n_frames, n_tokens)
        assert index.shape == (n_tokens,) and np.all(np.diff(index) > 0) and index.max(initial=0) < n_frames
        if n_tokens:
            aligned += 1
            with pytest.raises(EquivtestError, match="gives .* tokens where the text network"):
                align(wave, n_frames, n_tokens + 1)
    assert aligned >= 3  # the random recogniser writes words for most of these waveforms


def _speech_text_pair():
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(n)).astype(np.float32) for n in rng.integers(1600, 3200, 10)]
    asr = HFNetwork(tiny_wav2vec2(), "wav2vec2.encoder.layers.1", "audio", features=6)
    clf = HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "text", tokenizer=word_tokenizer(), features=6)
    texts = {len(w): " ".join(rng.choice(["the", "film", "was", "good", "bad"], int(rng.integers(2, 5))))
             for w in waves}
    return waves, HFPair(asr, clf, names=("asr", "sentiment"), domain_map=lambda w: texts[len(w)])


def test_a_position_map_pairs_each_of_bs_positions_with_the_a_position_it_names():
    waves, pair = _speech_text_pair()
    seen = []

    def last_frames(wave, length_a, length_b):  # B's positions on A's last frames, in order
        seen.append((len(wave), length_a, length_b))
        return np.arange(length_a - length_b, length_a)

    sampling = HFSampling(GaussianNeighbourhood(10, 0.05), positions=64, align=last_frames)
    fitted = fit_hf(pair, waves[:7], FitConfig(n_eigenvectors=4), sampling)
    assert fitted.sample_rows == [lb for _, _, lb in seen]  # every one of B's positions is a row
    first = waves[0]
    a_seq = pair.a.sequences(pair.a.encode(first)[None])[0].numpy()
    b_len = seen[0][2]
    rows = fitted.activations["a"][0][: b_len]
    # the fit's rows come from padded batches across inputs, this pass from the input alone:
    # equal to float32 rounding (the batched capture's contract, tests/test_hf_batching.py)
    np.testing.assert_allclose(np.sort(rows, axis=0), np.sort(a_seq[-b_len:], axis=0), rtol=1e-5, atol=1e-6)
    result = fitted.evaluate(waves[7:])
    assert [c.direction for c in result.criteria if c.name == "agreement"] == ["a->b"]
    assert sampling.describe()["align"] == "last_frames"


def test_bad_position_maps_are_clear_errors():
    waves, pair = _speech_text_pair()
    config = FitConfig(n_eigenvectors=2)
    for bad, message in ((lambda w, la, lb: np.arange(lb + 1), "one integer position of A per position of B"),
                         (lambda w, la, lb: np.arange(lb) * 0.5, "one integer position of A per position of B"),
                         (lambda w, la, lb: np.arange(lb) + la, "beyond 0..")):
        with pytest.raises(EquivtestError, match=message):
            fit_hf(pair, waves[:4], config, HFSampling(GaussianNeighbourhood(5, 0.05), align=bad))
    with pytest.raises(EquivtestError, match="or a position map"):
        HFSampling(align="sideways")
    two_way = HFPair(pair.b, pair.b, names=("x", "y"))
    fitted = fit_hf(two_way, ["the film was good", "bad film", "the plot", "good good film"], config,
                    HFSampling(GaussianNeighbourhood(5, 0.05), align=lambda s, la, lb: np.arange(lb)))
    assert list(fitted.directions()) == [("a", "b")]
    result = fitted.evaluate(["the film", "bad plot"])  # a position map stitches from A into B only
    assert {c.direction for c in result.criteria if c.name == "agreement"} == {"a->b"}
