"""The text suite's `hub` source, exercised on local save_pretrained directories (the hub
itself is not reachable here): same loading code as for the thesis's model ids."""

import numpy as np
import pytest

from equivtest import FitConfig, GaussianNeighbourhood
from equivtest.adapters.hf import HFSampling, fit_hf
from equivtest_thesis.experiments import text

transformers = pytest.importorskip("transformers")
from tests.test_hf import WORDS, sentences, word_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def hub_dirs(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("hub")
    torch.manual_seed(0)
    xlnet = transformers.XLNetForSequenceClassification(transformers.XLNetConfig(
        vocab_size=len(WORDS) + 2, d_model=32, n_layer=7, n_head=4, d_inner=64, num_labels=2, pad_token_id=0))
    roberta = transformers.RobertaForSequenceClassification(transformers.RobertaConfig(
        vocab_size=len(WORDS) + 2, hidden_size=32, num_hidden_layers=13, num_attention_heads=4, intermediate_size=64,
        num_labels=2, pad_token_id=0, max_position_embeddings=64))
    for name, model in (("xlnet", xlnet), ("roberta", roberta)):
        model.save_pretrained(root / name)
        word_tokenizer().save_pretrained(root / name)
    return root / "xlnet", root / "roberta"


def test_hub_source_loads_directories_in_place_of_ids_and_fits(hub_dirs):
    pair = text.pair("hub", hub_a=str(hub_dirs[0]), hub_b=str(hub_dirs[1]))
    assert type(pair.a.model).__name__ == "XLNetForSequenceClassification"
    assert type(pair.b.model).__name__ == "RobertaForSequenceClassification"
    assert (pair.a.layer, pair.b.layer) == ("transformer.layer.6", "roberta.encoder.layer.12")
    fitted = fit_hf(pair, sentences(30), FitConfig(n_eigenvectors=5), HFSampling(GaussianNeighbourhood(10, 0.05), positions=6))
    # the thesis's feature counts: 24 of XLNet's width, 16 of RoBERTa's
    assert fitted.activations["a"][0].shape[1] == 24 and fitted.activations["b"][0].shape[1] == 16
    result = fitted.evaluate(sentences(8, seed=3))
    assert np.isfinite(result.value("activation_mse", "a->b"))


def test_hub_source_with_unknown_source_is_an_error():
    with pytest.raises(ValueError, match="source must be 'embedded' or 'hub'"):
        text.pair("internet")
