"""The speech suites' `hub` source, exercised on local save_pretrained directories (the hub
is not reachable here): the same loading code as for the thesis's model ids."""

import json

import numpy as np
import pytest

from equivtest import FitConfig, GaussianNeighbourhood
from equivtest.adapters.hf import HFSampling, answers_by_direction, fit_hf
from equivtest.errors import EquivtestError
from equivtest_thesis.experiments import speech, speech_sentiment
from equivtest_thesis.zoo.speech_hub import encoder_decoder_network

transformers = pytest.importorskip("transformers")
CHARS = ["<pad>", "<s>", "</s>", "<unk>", "|", *"abcdefghijklmnopqrstuvwxyz'"]
WIDE = 128  # the hub source keeps 128 equidistant features, as the thesis does


def _waves(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(int(k)).astype(np.float32) for k in rng.integers(3200, 4800, n)]


def _wav2vec2_config(**kw):
    return transformers.Wav2Vec2Config(
        hidden_size=WIDE, num_hidden_layers=12, num_attention_heads=2, intermediate_size=32, conv_dim=(16, 16),
        conv_stride=(5, 4), conv_kernel=(10, 4), num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2,
        mask_time_prob=0.0, **kw)


@pytest.fixture(scope="module")
def hub_dirs(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("speech-hub")
    torch.manual_seed(0)
    (root / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(CHARS)}))
    ctc = transformers.Wav2Vec2ForCTC(_wav2vec2_config(vocab_size=len(CHARS), pad_token_id=0))
    ctc.save_pretrained(root / "wav2vec2")
    transformers.Wav2Vec2CTCTokenizer(str(root / "vocab.json")).save_pretrained(root / "wav2vec2")
    s2t = transformers.Speech2TextForConditionalGeneration(transformers.Speech2TextConfig(
        vocab_size=20, d_model=WIDE, encoder_layers=12, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, conv_channels=16, num_conv_layers=2,
        conv_kernel_sizes=(5, 5), max_source_positions=200, max_target_positions=64, pad_token_id=0,
        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1))
    s2t.save_pretrained(root / "speech2text")
    decoder = transformers.BertConfig(vocab_size=20, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, is_decoder=True, add_cross_attention=True)
    sed = transformers.SpeechEncoderDecoderModel(encoder=transformers.Wav2Vec2Model(_wav2vec2_config()),
                                                 decoder=transformers.BertLMHeadModel(decoder))
    sed.config.decoder_start_token_id, sed.config.pad_token_id, sed.config.eos_token_id = 1, 0, 2
    sed.save_pretrained(root / "speech-encoder-decoder")
    return root


def test_speech_hub_source_loads_directories_in_place_of_ids_and_fits(hub_dirs):
    p = speech.pair("hub", hub_a=str(hub_dirs / "wav2vec2"), hub_b=str(hub_dirs / "speech2text"))
    assert type(p.a.model).__name__ == "Wav2Vec2ForCTC"
    assert type(p.b.model).__name__ == "Speech2TextForConditionalGeneration"
    assert (p.a.layer, p.b.layer) == ("wav2vec2.encoder.layers.11", "model.encoder.layers.11")
    fitted = fit_hf(p, _waves(8), FitConfig(n_eigenvectors=4),
                    HFSampling(GaussianNeighbourhood(8, 0.05), positions=4))
    assert fitted.activations["a"][0].shape[1] == WIDE and fitted.activations["b"][0].shape[1] == WIDE
    result = fitted.evaluate(_waves(2, seed=1))
    assert {c.direction for c in result.criteria if c.name == "word_agreement"} == {"a->b", "b->a"}
    assert np.isfinite(result.value("activation_mse", "a->b"))
    # the CTC tokenizer saved beside the model decodes its transcripts
    assert all(isinstance(t, str) for t in answers_by_direction(result)["b->a"]["own"])


def test_speech_hub_accepts_a_speech_encoder_decoder_directory(hub_dirs):
    net = encoder_decoder_network(hub_dirs / "speech-encoder-decoder", 11, WIDE)
    assert net.layer == "encoder.encoder.layers.11"
    x = net.encode(_waves(1)[0])
    assert net.sequences(x[None]).shape[-1] == WIDE
    assert isinstance(net.answer(x), str)


def test_speech_sentiment_hub_source_loads_directories(hub_dirs):
    import torch
    from tests.test_hf import WORDS, word_tokenizer

    torch.manual_seed(0)
    xlnet = transformers.XLNetForSequenceClassification(transformers.XLNetConfig(
        vocab_size=len(WORDS) + 2, d_model=32, n_layer=7, n_head=4, d_inner=64, num_labels=2, pad_token_id=0))
    xlnet.save_pretrained(hub_dirs / "xlnet")
    word_tokenizer().save_pretrained(hub_dirs / "xlnet")
    p = speech_sentiment.pair("hub", hub_a=str(hub_dirs / "wav2vec2"), hub_b=str(hub_dirs / "xlnet"))
    assert p.domain_map is not None and type(p.b.model).__name__ == "XLNetForSequenceClassification"
    assert isinstance(p.domain_map(_waves(1)[0]), str)


def test_removed_speech2text2_is_named_in_the_error(tmp_path):
    with pytest.raises(EquivtestError, match="transformers 5 removed Speech2Text2"):
        encoder_decoder_network("facebook/s2t-wav2vec2-large-en-de", 11, WIDE)
    folder = tmp_path / "s2t2"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "speech-encoder-decoder",
                                                    "decoder": {"model_type": "speech_to_text_2"}}))
    with pytest.raises(EquivtestError, match="removed Speech2Text2"):
        encoder_decoder_network(folder, 11, WIDE)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(EquivtestError, match="SpeechEncoderDecoderModel or a Speech2TextForConditionalGeneration"):
        encoder_decoder_network(folder, 11, WIDE)


def test_unknown_source_is_an_error():
    for module in (speech, speech_sentiment):
        with pytest.raises(ValueError, match="source must be 'embedded' or 'hub'"):
            module.pair("internet")


def test_wav2vec2_directory_without_its_ctc_tokenizer_is_a_clear_error(tmp_path):
    from equivtest_thesis.zoo.speech_hub import wav2vec2_network

    transformers.Wav2Vec2ForCTC(_wav2vec2_config(vocab_size=len(CHARS), pad_token_id=0)).save_pretrained(tmp_path / "w")
    with pytest.raises(EquivtestError, match="no CTC tokenizer found"):
        wav2vec2_network(tmp_path / "w", 11, WIDE)
