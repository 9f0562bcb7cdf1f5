"""The digit zoo: data split, the report's CNN, deterministic cached training, merge tasks."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from equivtest.errors import EquivtestError
from equivtest.weights import FlatIndex, flat_index, flatten_parameters
from equivtest_thesis.zoo import digits as D


def test_split_is_stratified_disjoint_and_standardised():
    data = D.load_digit_data()
    n_train, n_test = len(data.y_train), len(data.y_test)
    assert n_train + n_test == 1797
    for c in range(10):
        tr, te = int((data.y_train == c).sum()), int((data.y_test == c).sum())
        assert abs(tr / (tr + te) - D.TRAIN_SHARE) < 0.01
    # no image is in both splits (the digits set has a handful of exact duplicates: compare counts)
    train_rows = {tuple(r) for r in data.x_train.reshape(n_train, -1).numpy().round(5)}
    overlap = sum(tuple(r) in train_rows for r in data.x_test.reshape(n_test, -1).numpy().round(5))
    assert overlap <= 5
    assert float(data.x_train.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(data.x_train.std()) == pytest.approx(1.0, abs=1e-3)
    assert data.x_train.shape[1:] == (1, 8, 8)


def test_the_reports_cnn_adapted_to_8x8():
    net = D.DigitCNN()
    assert sum(p.numel() for p in net.parameters()) == 2466
    assert net(torch.zeros(3, 1, 8, 8)).shape == (3, 10)
    assert [n for n, _ in net.named_children()][:3] == ["conv1", "pool1", "act1"]


def test_one_initialisation_per_seed():
    a, b, c = D.initial_network(3), D.initial_network(3), D.initial_network(4)
    va, vb, vc = (flatten_parameters(n)[0] for n in (a, b, c))
    assert torch.equal(va, vb) and not torch.equal(va, vc)
    assert all(float(m.bias.detach().abs().max()) == 0 for m in a.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))


def test_training_is_deterministic_cached_and_learns(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVTEST_CACHE", str(tmp_path))
    net, summary = D.digit_cnn((0, 1), seed=0, epochs=3)
    files = sorted(p.name for p in (tmp_path / "zoo").iterdir())
    assert any(f.endswith(".safetensors") for f in files) and any(f.endswith(".json") for f in files)
    stored = json.loads(next((tmp_path / "zoo").glob("*.json")).read_text())
    index = FlatIndex.from_dict(stored["flat_index"])
    assert index == flat_index(net) and index.layers()["fc2"] == (2256, 2466)
    assert summary["test_accuracy"] >= 0.9  # 0 vs. 1 after three epochs
    assert D.accuracy(net, (0, 1)) == summary["test_accuracy"]
    again, _ = D.digit_cnn((0, 1), seed=0, epochs=3)  # from the cache
    assert torch.equal(flatten_parameters(net)[0], flatten_parameters(again)[0])
    monkeypatch.setenv("EQUIVTEST_CACHE", str(tmp_path / "fresh"))
    retrained, _ = D.digit_cnn((0, 1), seed=0, epochs=3)  # trained again: bit for bit the same
    assert torch.equal(flatten_parameters(net)[0], flatten_parameters(retrained)[0])


@pytest.mark.parametrize("bad", [(3,), (1, 1), (0, 10), (-1, 2), ()])
def test_bad_class_sets(bad):
    with pytest.raises(EquivtestError, match="at least 2 distinct digits"):
        D.check_classes(bad)


def test_tasks_hold_out_their_unions():
    spec = D.PROFILES["ci"]
    train, heldout = spec.tasks()
    assert len(train) == spec.n_train_pairs and len(heldout) == spec.n_heldout
    held_unions = {tuple(sorted(a + b)) for a, b in heldout}
    for a, b in train + heldout:
        assert not set(a) & set(b) and a in spec.parent_sets and b in spec.parent_sets
    assert not held_unions & {tuple(sorted(a + b)) for a, b in train}
    assert set(train).isdisjoint(heldout)
    with pytest.raises(EquivtestError, match="too few"):
        D.ZooSpec(seeds=(0,), parent_sets=((0, 1), (2, 3)), n_train_pairs=1, n_heldout=1).tasks()
    counts = np.bincount([c for s in D.CI_PARENTS for c in s], minlength=10)
    assert (counts == 3).all()  # every digit in three parent sets


def test_a_network_trained_in_a_group_equals_one_trained_alone():
    data = D.load_digit_data()
    steps = len(data.subset((0, 1))[1]) // 32
    partner = next(c for c in D.ALL_PAIRS if c != (0, 1) and len(data.subset(c)[1]) // 32 == steps)
    alone = D.train_group([(0, 1)], seed=5, epochs=2, lr=3e-3, batch_size=32)[0]
    grouped = D.train_group([partner, (0, 1)], seed=5, epochs=2, lr=3e-3, batch_size=32)[1]
    np.testing.assert_allclose(flatten_parameters(alone)[0].numpy(), flatten_parameters(grouped)[0].numpy(),
                               atol=1e-5)
    assert not torch.equal(flatten_parameters(alone)[0], flatten_parameters(D.initial_network(5))[0])
    with pytest.raises(EquivtestError, match="same number of full batches"):
        D.train_group([(0, 1), (0, 1, 2, 3)], seed=5, epochs=1, lr=3e-3, batch_size=32)
