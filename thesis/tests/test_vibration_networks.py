"""The vibration networks: shapes, deterministic cached training, and the layers the suite reads."""

import numpy as np
import torch

from equivtest import LayerSpec
from equivtest.capture import capture
from equivtest_thesis.zoo import vibration as zoo_vibration
from equivtest_thesis.zoo.vibration import ConvTransformerNet, LstmNet, vibration_networks


def test_networks_map_windows_to_two_logits():
    x = torch.zeros(5, 100, 2)
    assert LstmNet()(x).shape == (5, 2) and ConvTransformerNet()(x).shape == (5, 2)


def test_layers_the_suite_reads():
    x = np.random.default_rng(0).standard_normal((3, 100, 2)).astype(np.float32)
    lstm = capture(LstmNet(), x, LayerSpec("lstm", output=0, layout="bsf", slice_length=25))
    conv = capture(ConvTransformerNet(), x, LayerSpec("conv", layout="bfs", neurons=slice(None, None, 4), slice_length=25))
    assert lstm.shape == (3 * 4, 25) and conv.shape == (3 * 4, 25 * 16)


def test_training_is_deterministic_and_cached(tmp_path, monkeypatch):
    runs = []
    for folder in ("one", "two"):
        monkeypatch.setenv("EQUIVTEST_CACHE", str(tmp_path / folder))
        a, b, info = vibration_networks(epochs={"lstm": 1, "transformer": 1})
        runs.append((a.state_dict(), b.state_dict(), info["networks"]))
    for i in (0, 1):
        assert all(torch.equal(runs[0][i][k], runs[1][i][k]) for k in runs[0][i])
    assert runs[0][2] == runs[1][2]
    for summary in runs[0][2].values():
        assert 0.0 <= summary["test_accuracy"] <= 1.0 and summary["best_epoch"] == 1


def test_another_noise_level_trains_on_its_own_data_and_caches_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIVTEST_CACHE", str(tmp_path))
    seen = []  # the training windows each network was handed (training itself is not the point)
    monkeypatch.setattr(zoo_vibration, "_train", lambda net, splits, *args: seen.append(splits.train.x) or {})
    suite = vibration_networks()[2]
    quiet = vibration_networks(noise_snr_db=5.0)[2]
    assert len(seen) == 4 and np.array_equal(seen[0], suite["splits"].train.x) and np.array_equal(seen[2], quiet["splits"].train.x)
    assert suite["splits"].noise_snr_db == -5.0 and quiet["splits"].noise_snr_db == 5.0
    assert not np.array_equal(suite["splits"].train.x, quiet["splits"].train.x)
    # one cached network per name and noise level
    assert len(list(tmp_path.rglob("vibration-lstm-*.safetensors"))) == 2
    assert len(list(tmp_path.rglob("vibration-transformer-*.safetensors"))) == 2
