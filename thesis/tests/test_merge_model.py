"""The merger (double-encoder transformer autoencoder): tokens, skip, loss, training."""

from __future__ import annotations

import pytest
import torch

from equivtest.weights import WeightSpaceError, flat_index, flatten_parameters, layerwise_mse
from equivtest_thesis.experiments.merge_model import (MergerConfig, NeuronTokens, TransformerMerger, layer_scales, layerwise_loss,
                                      predict, train_merger)
from equivtest_thesis.zoo.digits import DigitCNN, initial_network


@pytest.fixture
def index():
    return flat_index(DigitCNN())


def test_neuron_tokens_round_trip_and_layout(index):
    tokens = NeuronTokens(index)
    assert tokens.n_tokens == 8 + 8 + 4 + 20 + 10
    assert [size for _, _, size, _, _ in tokens.layers] == [10, 73, 73, 65, 21]
    v = torch.randn(3, index.size)
    per_layer = tokens.to_tokens(v)
    assert torch.equal(tokens.to_flat(per_layer), v)
    net = initial_network(0)
    flat = flatten_parameters(net)[0][None]
    conv2 = tokens.to_tokens(flat)[1][0]
    assert torch.equal(conv2[5, :-1], net.conv2.weight[5].reshape(-1).detach())  # filter 5 and its bias
    assert conv2[5, -1] == net.conv2.bias[5]


def test_skip_starts_from_the_parents_mean(index):
    torch.manual_seed(0)
    model = TransformerMerger(index, MergerConfig(d_model=16, d_ff=32, neck=8, n_layers=1), torch.full((index.size,), 0.5))
    for head in model.decoder.heads:
        torch.nn.init.zeros_(head.weight)
        torch.nn.init.zeros_(head.bias)
    model.eval()
    a, b = torch.randn(2, index.size), torch.randn(2, index.size)
    assert torch.allclose(predict(model, a, b), 0.5 * (a + b), atol=1e-6)
    assert predict(model, a[0], b[0]).shape == (index.size,)


def test_layerwise_loss_matches_the_distance(index):
    pred, target = torch.randn(1, index.size, dtype=torch.float64), torch.randn(1, index.size, dtype=torch.float64)
    per_entry, per_layer = layer_scales(torch.randn(5, index.size), index)
    ours = float(layerwise_loss(pred, target, index, per_entry.double()))
    assert ours == pytest.approx(layerwise_mse(pred[0].numpy(), target[0].numpy(), index, scales=per_layer))


def test_training_learns_a_merge_rule(index):
    # synthetic triples: target = parent 1 with the fc2 layer of parent 2 (a row-selection
    # rule, not the mean); the loss must fall well below where it starts
    gen = torch.Generator().manual_seed(0)
    w1, w2 = torch.randn(24, index.size, generator=gen) * 0.3, torch.randn(24, index.size, generator=gen) * 0.3
    lo, hi = index.layers()["fc2"]
    target = w1.clone()
    target[:, lo:hi] = w2[:, lo:hi]
    cfg = MergerConfig(d_model=16, d_ff=32, neck=16, n_layers=1, epochs=40, batch_size=8, lr=3e-3)
    model, info = train_merger(w1, w2, target, index, cfg)
    history = info["loss_history"]
    assert history[-1] < 0.7 * history[0]
    with pytest.raises(WeightSpaceError, match="three"):
        train_merger(w1, w2[:3], target, index, cfg)


def test_the_merger_is_cached_and_reproducible(index, tmp_path, monkeypatch):
    from equivtest_thesis.experiments.merge_model import cached_merger

    monkeypatch.setenv("EQUIVTEST_CACHE", str(tmp_path))
    gen = torch.Generator().manual_seed(1)
    w1, w2 = torch.randn(6, index.size, generator=gen), torch.randn(6, index.size, generator=gen)
    target = 0.5 * (w1 + w2)
    cfg = MergerConfig(d_model=16, d_ff=32, neck=8, n_layers=1, epochs=3, batch_size=4)
    trained, info = cached_merger(w1, w2, target, index, cfg)
    direct, _ = train_merger(w1, w2, target, index, cfg)
    loaded, info2 = cached_merger(w1, w2, target, index, cfg)
    assert len(list((tmp_path / "zoo").glob("merge-merger-*.safetensors"))) == 1
    assert info2["loss_history"] == info["loss_history"]
    for model in (direct, loaded):
        assert torch.equal(predict(model, w1, w2), predict(trained, w1, w2))
    other, _ = cached_merger(w1, w2, target + 1.0, index, cfg)  # other triples: another entry
    assert len(list((tmp_path / "zoo").glob("merge-merger-*.safetensors"))) == 2
