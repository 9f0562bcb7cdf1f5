"""The Hugging Face adapter: loading (object, hub id, local directory), variable-length
sequences, equidistant features, random positions, length alignment, embedding-space
neighbourhoods, cross-domain samples, stitching, and the bad inputs."""

import numpy as np
import pytest
import torch

from equivtest import FitConfig, GaussianNeighbourhood
from equivtest.adapters.hf import (
    HFNetwork, HFPair, HFSampling, align_length, ctc_greedy, equidistant, fit_hf, load_model, select_positions,
    word_error_rate,
)
from equivtest.errors import EquivtestError, LayerNotFoundError

transformers = pytest.importorskip("transformers")

WORDS = "the a film movie is was good bad great awful funny boring story actors plot not very and but".split()


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[PAD]", "[UNK]"] + WORDS)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]")


def sentences(n, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(3, 12))) for _ in range(n)]


def tiny_roberta(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.RobertaConfig(vocab_size=len(WORDS) + 2, hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, intermediate_size=64, num_labels=2, pad_token_id=0,
                                     max_position_embeddings=64)
    return transformers.RobertaForSequenceClassification(cfg).eval()


def tiny_xlnet(seed=1):
    torch.manual_seed(seed)
    cfg = transformers.XLNetConfig(vocab_size=len(WORDS) + 2, d_model=32, n_layer=2, n_head=4, d_inner=64,
                                   num_labels=2, pad_token_id=0)
    return transformers.XLNetForSequenceClassification(cfg).eval()


def tiny_wav2vec2(seed=2):
    torch.manual_seed(seed)
    cfg = transformers.Wav2Vec2Config(vocab_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                                      num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4, do_stable_layer_norm=True,
                                      feat_extract_norm="layer")
    return transformers.Wav2Vec2ForCTC(cfg).eval()


@pytest.fixture(scope="module")
def saved_roberta(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "roberta-tiny"
    tiny_roberta().save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    return folder


def test_hub_path_loads_a_local_directory_and_fits(saved_roberta):
    # the `hub` source: model and tokenizer both come from a save_pretrained directory
    a = HFNetwork(str(saved_roberta), "roberta.encoder.layer.0", "text", features=8,
                  model_class="AutoModelForSequenceClassification")
    assert type(a.model).__name__ == "RobertaForSequenceClassification"
    reference = tiny_roberta()
    for (name, p), q in zip(a.model.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(p, q), name
    b = HFNetwork(tiny_xlnet(), "transformer.layer.0", "text", features=8, tokenizer=word_tokenizer())
    assert b.sequence_first and b.embedding == "transformer.word_embedding"
    pair = HFPair(a, b, name="toy", names=("roberta", "xlnet"))
    fitted = fit_hf(pair, sentences(40), FitConfig(n_eigenvectors=6), HFSampling(GaussianNeighbourhood(12, 0.05), positions=4))
    rows = sum(fitted.sample_rows)
    assert fitted.activations["a"][0].shape == (rows, 8) and fitted.activations["b"][1].shape == (rows, 12, 8)
    assert all(1 <= r <= 4 for r in fitted.sample_rows)
    result = fitted.evaluate(sentences(10, seed=5))
    for direction in ("a->b", "b->a"):
        assert 0.0 <= result.value("agreement", direction) <= 1.0
        assert np.isfinite(result.value("activation_mse", direction))


def test_a_network_against_itself_is_reproduced():
    # positive control: identical networks, identical samples -> the stitched network is the network
    net = tiny_roberta()
    tok = word_tokenizer()
    a = HFNetwork(net, "roberta.encoder.layer.0", "text", tokenizer=tok)  # all 32 features
    b = HFNetwork(net, "roberta.encoder.layer.0", "text", tokenizer=tok)
    fitted = fit_hf(HFPair(a, b, names=("x", "y")), sentences(60), FitConfig(n_eigenvectors=8),
                    HFSampling(GaussianNeighbourhood(40, 1e-4), positions=64))
    train_rows = fitted.activations["a"][0]
    predicted = fitted.transformation.predict(train_rows, to="b")
    assert np.mean((predicted - train_rows) ** 2) / train_rows.var() < 1e-6
    result = fitted.evaluate(sentences(20, seed=0))  # the training sentences: every position was seen
    assert result.value("agreement", "a->b") == 1.0
    assert result.value("activation_mse", "a->b") / train_rows.var() < 1e-3


def test_model_output_items_and_equidistant_features():
    np.testing.assert_array_equal(equidistant(768, 24), np.arange(24) * 32)
    assert equidistant(64, 24).tolist()[:4] == [0, 2, 5, 8]
    with pytest.raises(EquivtestError, match="cannot select 30 equidistant features out of 16"):
        equidistant(16, 30)
    net, tok = tiny_roberta(), word_tokenizer()
    # roberta.encoder returns a BaseModelOutput: item 0 is last_hidden_state
    whole = HFNetwork(net, "roberta.encoder", "text", tokenizer=tok, features=4)
    layer = HFNetwork(net, "roberta.encoder.layer.1", "text", tokenizer=tok, features=4)
    x = whole.encode("the film was good")
    torch.testing.assert_close(whole.sequences(x[None]), layer.sequences(x[None]))
    assert whole.sequences(x[None]).shape == (1, 4, 4)


def test_embedding_hook_replaces_the_embedding_output():
    for net, layer in ((tiny_roberta(), "roberta.encoder.layer.1"), (tiny_xlnet(), "transformer.layer.1")):
        h = HFNetwork(net, layer, "text", tokenizer=word_tokenizer())
        x = h.encode("the plot was not very funny")
        emb = h.embed(x[None])
        assert emb.shape == (1, len(x), net.config.hidden_size if hasattr(net.config, "hidden_size") else 32)
        same = h.sequences(x[None], embeddings=emb)
        torch.testing.assert_close(same, h.sequences(x[None]))
        moved = h.sequences(x[None], embeddings=emb + 0.5)
        assert not torch.allclose(moved, same)


def test_a_layer_that_is_the_embedding_itself_reads_the_replaced_embeddings():
    # neighbourhoods drawn in the embedding output must show up when that output is the layer
    # read (before, the layer's hook ran first and every neighbour read the unperturbed output)
    h = HFNetwork(tiny_xlnet(), "transformer.word_embedding", "text", tokenizer=word_tokenizer())
    x = h.encode("the plot was not very funny")
    emb = h.embed(x[None])
    torch.testing.assert_close(h.sequences(x[None]), emb.to(torch.float64))
    moved = emb + 0.25 * torch.randn(emb.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(h.sequences(x[None], embeddings=moved), moved.to(torch.float64))


def test_sequence_alignment_trims_or_pads_with_the_mean():
    seq = np.arange(12, dtype=float).reshape(4, 3)
    np.testing.assert_array_equal(align_length(seq, 2), seq[:2])
    padded = align_length(seq, 6)
    np.testing.assert_array_equal(padded[:4], seq)
    np.testing.assert_array_equal(padded[4:], np.repeat(seq.mean(axis=0, keepdims=True), 2, axis=0))
    nb = np.stack([seq, seq + 1])  # (M, T, f): each neighbour padded with its own mean
    np.testing.assert_array_equal(align_length(nb, 5)[1, 4], seq.mean(axis=0) + 1)
    # resample: first and last positions meet, the rest keep their relative place
    np.testing.assert_array_equal(align_length(seq, 2, "resample"), seq[[0, 3]])
    np.testing.assert_array_equal(align_length(seq, 7, "resample"), seq[[0, 0, 1, 2, 2, 2, 3]])
    np.testing.assert_array_equal(align_length(seq, 4, "resample"), seq)


def test_random_positions_and_positions_beyond_the_length():
    rng = np.random.default_rng(0)
    pos = select_positions(100, 64, rng)
    assert len(pos) == 64 and len(set(pos)) == 64 and np.all(np.diff(pos) > 0)
    assert select_positions(10, 64, rng).tolist() == list(range(10))  # shorter than 64: all positions
    with pytest.raises(EquivtestError, match=r"position\(s\) \[12, 30\] requested beyond the length 12"):
        select_positions(12, [0, 12, 30], rng, "sample 3")
    # and through a fit: explicit positions past a short sentence
    h = HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "text", tokenizer=word_tokenizer())
    with pytest.raises(EquivtestError, match="requested beyond the length 2 of sample 0"):
        fit_hf(HFPair(h, h, names=("x", "y")), ["good film"], FitConfig(), HFSampling(GaussianNeighbourhood(4, 0.05), positions=[0, 5]))


def test_bad_inputs_are_clear_errors():
    text = HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "text", tokenizer=word_tokenizer())
    with pytest.raises(EquivtestError, match="empty text"):
        text.encode("   ")
    with pytest.raises(EquivtestError, match="a text sample is a str"):
        text.encode(3)
    audio = HFNetwork(tiny_wav2vec2(), "wav2vec2.encoder.layers.0", "audio")
    with pytest.raises(EquivtestError, match="audio of zero length"):
        audio.encode(np.zeros(0))
    with pytest.raises(EquivtestError, match="1-d waveform"):
        audio.encode(np.zeros((2, 100)))
    with pytest.raises(LayerNotFoundError, match=r"no layer 'wav2vec2.encoder.layers.7'.*did you mean"):
        HFNetwork(tiny_wav2vec2(), "wav2vec2.encoder.layers.7", "audio")
    with pytest.raises(LayerNotFoundError, match="no embedding layer 'embed'"):
        HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "text", tokenizer=word_tokenizer(), embedding="embed")
    with pytest.raises(EquivtestError, match="needs tokenizer="):
        HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "text")
    with pytest.raises(EquivtestError, match="modality must be one of"):
        HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "image")
    with pytest.raises(EquivtestError, match="align must be one of"):
        HFSampling(align="cut")


def test_missing_directory_and_unreachable_hub_id_are_clear_errors(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EquivtestError, match="is not a model directory"):
        load_model(tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(EquivtestError, match="save_pretrained"):
        load_model("no-such-user/no-such-model-equivtest", local_files_only=True)


def test_audio_pair_with_cross_domain_text_and_dummy_target_input():
    # A: a CTC model on waveforms; B: a text classifier on A's transcript (the speech-sentiment shape)
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(int(n)).astype(np.float32) for n in rng.integers(1600, 3200, 12)]
    vocab = ["<pad>", "|", "good", "bad", "film", "the", "plot", "funny"]
    asr = HFNetwork(tiny_wav2vec2(), "wav2vec2.encoder.layers.1", "audio", features=6,
                    predict=ctc_greedy(vocab, blank=0))
    transcripts = [asr.answer(asr.encode(w)) for w in waves]
    assert all(isinstance(t, str) for t in transcripts)

    def transcribe(wave):  # a user's map into B's domain (a random CTC net's transcripts are mostly empty)
        return sentences(1, seed=len(wave))[0]

    clf = HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "text", tokenizer=word_tokenizer(), features=6)
    pair = HFPair(asr, clf, names=("asr", "sentiment"), domain_map=transcribe)
    fitted = fit_hf(pair, waves[:8], FitConfig(n_eigenvectors=4), HFSampling(GaussianNeighbourhood(10, 0.05), positions=8))
    assert fitted.activations["a"][0].shape[1] == 6
    real = fitted.evaluate(waves[8:])
    assert [c.direction for c in real.criteria if c.name == "agreement"] == ["a->b"]  # one direction only
    dummy = fitted.evaluate(waves[8:], target_input="dummy")
    assert dummy.info["target_input"] == "dummy"
    assert fitted.directions() == [("a", "b")]  # a domain map has no inverse: no stitching into A
    assert all(c.direction != "b->a" for c in dummy.criteria)


def test_word_error_rate():
    assert word_error_rate(["the film was good"], ["the film was good"]) == 0.0
    assert word_error_rate(["the film was good"], ["the film good"]) == 0.25
    assert word_error_rate(["a b", "c"], ["a x y", ""]) == 1.0  # 2 errors (sub, ins) + 1 deletion over 3 words


def test_a_pairs_device_moves_transformers_models_too_and_a_bad_one_is_a_clear_error():
    # NetworkPair(device=...) once moved torch modules only: a transformers pair kept its models where they
    # were, silently; an equivtest TorchNetwork side raised AttributeError
    from equivtest import NetworkPair
    from equivtest.networks import TorchNetwork
    from tests._nets import tanh_mlp

    def text():
        return HFNetwork(tiny_roberta(), "roberta.encoder.layer.0", "text", tokenizer=word_tokenizer())

    with pytest.raises(EquivtestError, match="cannot move the networks to device 'nosuchdevice'"):
        NetworkPair(text(), text(), device="nosuchdevice")
    pair = NetworkPair(text(), text(), device="cpu")
    assert all(p.device.type == "cpu" for s in "ab" for p in pair.side(s).model.parameters())
    torch_pair = NetworkPair(TorchNetwork(tanh_mlp(0), "act1"), TorchNetwork(tanh_mlp(1), "act1"), device="cpu")
    assert torch_pair.side("a").module is not None
    with pytest.raises(EquivtestError, match="cannot move the networks"):
        NetworkPair(TorchNetwork(tanh_mlp(0), "act1"), TorchNetwork(tanh_mlp(1), "act1"), device="nosuchdevice")
