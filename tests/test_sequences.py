"""Sequence layers: tuple outputs, layouts, slices of equidistant positions, stitching."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from equivtest import FitConfig, GaussianNeighbourhood, LayerSpec, NetworkPair, Sampler, fit_pair, fit_slice_lengths
from equivtest.capture import capture, capture_neighbourhoods
from equivtest.errors import ActivationError, EquivtestError
from equivtest.sampling import DatasetPoints

T = 20  # sequence length of the toy networks


class LstmNet(nn.Module):
    """LSTM(2 -> hidden) then a linear layer over all time steps (the thesis's LSTM shape)."""

    def __init__(self, hidden=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lstm = nn.LSTM(2, hidden, batch_first=True)
        self.head = nn.Linear(T * hidden, 1)

    def forward(self, x):  # x: (batch, T, 2)
        out, _ = self.lstm(x)
        return self.head(out.reshape(len(x), -1))


class ConvNet(nn.Module):
    """Conv1d(2 -> 6) on (batch, channel, time), then a linear head."""

    def __init__(self, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv1d(2, 6, kernel_size=3, padding=1)
        self.act = nn.Tanh()
        self.head = nn.Linear(6 * T, 1)

    def forward(self, x):  # x: (batch, T, 2)
        h = self.act(self.conv(x.transpose(1, 2)))
        return self.head(h.reshape(len(x), -1))


class HalvingConv(nn.Module):
    """A Conv1d of stride 2: its output sequence is half as long as its input."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 6, kernel_size=2, stride=2)

    def forward(self, x):
        return self.conv(x.transpose(1, 2)).sum(dim=(1, 2))


def smooth_sequences(n, seed=0):
    """n sequences (T, 2) that vary smoothly with a 1-d parameter, so the data is a curve."""
    s = np.linspace(-1, 1, n)[:, None, None]
    t = np.linspace(0, 1, T)[None, :, None]
    return np.concatenate([np.sin(2 * s + 3 * t), np.cos(s * t * 4)], axis=2)


@settings(max_examples=25)
@given(
    layout=st.sampled_from(["bsf", "bfs", "sbf"]),
    p=st.sampled_from([1, 2, 4, 5, 10, 20]),
    f=st.integers(1, 5),
    b=st.integers(1, 4),
)
def test_rows_round_trip_to_the_layer_shape(layout, p, f, b):
    spec = LayerSpec("x", layout=layout, slice_length=p)
    shape = {"bsf": (b, T, f), "bfs": (b, f, T), "sbf": (T, b, f)}[layout]
    out = torch.arange(np.prod(shape), dtype=torch.float64).reshape(shape)
    rows = spec.to_rows(out)
    assert rows.shape == (b * (T // p), p * f)
    back = spec.from_rows(rows.numpy(), out)
    assert torch.equal(back, out)


def test_slices_hold_equidistant_positions():
    # value = position, one feature: slice k must hold positions k, k + 4, k + 8, ... for p = 5
    out = torch.arange(T, dtype=torch.float64).reshape(1, T, 1)
    rows = LayerSpec("x", layout="bsf", slice_length=5).to_rows(out).numpy()
    np.testing.assert_array_equal(rows, [[k + 4 * j for j in range(5)] for k in range(4)])


def test_tuple_output_needs_an_index_and_lstm_output_is_captured():
    net, x = LstmNet(), smooth_sequences(7)
    with pytest.raises(ActivationError, match=r"returns a tuple of 2 items; say which to use with LayerSpec\('lstm', output=0\)"):
        capture(net, x, "lstm")
    rows = capture(net, x, LayerSpec("lstm", output=0, layout="bsf", slice_length=5))
    assert rows.shape == (7 * 4, 5 * 3)
    with torch.no_grad():
        full, _ = net.lstm(torch.as_tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(rows[1], full[0, 1::4, :].reshape(-1).numpy(), rtol=1e-6)
    selector = capture(net, x, LayerSpec("lstm", output=lambda out: out[0], layout="bsf"))
    np.testing.assert_array_equal(selector, capture(net, x, LayerSpec("lstm", output=0, layout="bsf")))


def test_slice_length_that_does_not_divide_the_sequence_is_an_error():
    with pytest.raises(ActivationError, match=r"slice_length 3 does not divide the sequence length 20"):
        capture(LstmNet(), smooth_sequences(3), LayerSpec("lstm", output=0, layout="bsf", slice_length=3))


def test_bad_layout_and_slicing_without_layout_are_errors():
    with pytest.raises(EquivtestError, match="layout must be one of"):
        LayerSpec("x", layout="fsb")
    with pytest.raises(EquivtestError, match="slice_length needs a sequence layout"):
        LayerSpec("x", slice_length=5)


def test_neighbourhoods_follow_their_slices():
    net, x = ConvNet(), smooth_sequences(4)
    nb = x[:, None] + 0.01 * np.random.default_rng(0).standard_normal((4, 3, T, 2))
    spec = LayerSpec("act", layout="bfs", slice_length=10)
    samples, neighbourhoods = capture_neighbourhoods(net, x, nb, spec)
    assert samples.shape == (8, 60) and neighbourhoods.shape == (8, 3, 60)
    # row 2 * i + k is slice k of sample i; its neighbourhood is slice k of sample i's neighbours
    np.testing.assert_array_equal(neighbourhoods[5], capture(net, nb[2], spec)[1::2])


def test_per_position_mean_fills_unselected_neurons():
    spec = LayerSpec("x", neurons=[0, 2], layout="bsf", slice_length=2)
    template = torch.zeros(1, 4, 3, dtype=torch.float64)
    rows = np.array([[1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0]])  # slices 0 and 1, 2 positions x 2 neurons
    out = spec.from_rows(rows, template).numpy()[0]
    # positions 0, 2 come from slice 0; 1, 3 from slice 1; neuron 1 is each position's mean
    np.testing.assert_array_equal(out, [[1, 2, 3], [2, 3, 4], [5, 6, 7], [6, 7, 8]])


def test_sequence_network_is_equivalent_to_itself_through_slices():
    # 200 sequences on a curve, 2 slices each; held-out test sequences lie between them.
    # Measured: relative activation MSE 2.1e-5, null ratio 1.8e-5, stitched output 8.6e-5.
    net = ConvNet(seed=3)
    sampler = Sampler(DatasetPoints(smooth_sequences(200), 200), GaussianNeighbourhood(64, 1e-4), seed=0)
    spec = LayerSpec("act", layout="bfs", slice_length=10)
    fitted = fit_pair(NetworkPair(net, net, spec, spec), sampler, FitConfig(n_eigenvectors=4))
    assert fitted.activations["a"][0].shape == (400, 60)  # 200 samples x 2 slices
    test = smooth_sequences(399)[1::2][::5]  # midpoints between the samples
    result = fitted.evaluate(test, null_shuffles=2)
    assert result.value("activation_mse", "a->b") / fitted.activations["b"][0].var() < 1e-4
    assert result.value("null_ratio", "a->b") < 1e-3  # far better than chance pairing
    stitched = fitted.stitched(to="b")(test)
    with torch.no_grad():
        reference = net(torch.as_tensor(test, dtype=torch.float32)).numpy()
    assert np.mean((stitched - reference) ** 2) / reference.var() < 1e-3


def test_sequence_length_mismatch_between_networks_is_an_error():
    data = smooth_sequences(40)
    sampler = Sampler(DatasetPoints(data, 20), GaussianNeighbourhood(8, 1e-4), seed=0)
    pair = NetworkPair(
        ConvNet(), HalvingConv(), LayerSpec("act", layout="bfs", slice_length=5), LayerSpec("conv", layout="bfs", slice_length=5)
    )
    with pytest.raises(ActivationError, match="same number of slices per input"):
        fit_pair(pair, sampler, FitConfig())


def test_max_rows_draws_the_same_rows_of_both_networks():
    # A network against a neuron-permuted copy of itself, fitted on 150 of 400 slice rows:
    # row i of B must still be row i of A, permuted; and the fit still maps A onto B.
    net = ConvNet(seed=3)
    perm = np.random.default_rng(0).permutation(6)
    twin = ConvNet(seed=3)
    with torch.no_grad():
        twin.conv.weight.copy_(net.conv.weight[perm])
        twin.conv.bias.copy_(net.conv.bias[perm])
    sampler = Sampler(DatasetPoints(smooth_sequences(200), 200), GaussianNeighbourhood(32, 1e-4), seed=0)
    spec = LayerSpec("act", layout="bfs", slice_length=10)
    fitted = fit_pair(NetworkPair(net, twin, spec, spec), sampler, FitConfig(n_eigenvectors=4, max_rows=150))
    (sa, na), (sb, nb) = fitted.activations["a"], fitted.activations["b"]
    assert sa.shape == (150, 60) and na.shape == (150, 32, 60) and sb.shape == (150, 60)
    # features of a slice are (position, neuron) pairs: permute the neuron axis of A's rows
    moved = sa.reshape(150, 10, 6)[..., perm].reshape(150, 60)
    np.testing.assert_allclose(moved, sb, atol=1e-6)
    np.testing.assert_allclose(na.reshape(150, 32, 10, 6)[..., perm].reshape(150, 32, 60), nb, atol=1e-6)
    test = smooth_sequences(399)[1::2][::5]
    result = fitted.evaluate(test, null_shuffles=2)
    # measured: null ratio 6.3e-3, as with every slice of 75 samples (150 rows, 6.3e-3);
    # a fit whose rows of B were not those of A would sit near 1
    assert result.value("null_ratio", "a->b") < 0.05


def test_max_rows_below_two_is_refused():
    net = ConvNet(seed=3)
    sampler = Sampler(DatasetPoints(smooth_sequences(20), 20), GaussianNeighbourhood(8, 1e-4), seed=0)
    spec = LayerSpec("act", layout="bfs", slice_length=10)
    with pytest.raises(EquivtestError, match="max_rows must be at least 2"):
        fit_pair(NetworkPair(net, net, spec, spec), sampler, FitConfig(n_eigenvectors=3, max_rows=1))


@settings(max_examples=40)
@given(
    p=st.sampled_from([1, 2, 4, 5, 10, 20]),
    f=st.integers(1, 4),
    b=st.integers(1, 4),
    m=st.sampled_from([None, 1, 3]),
    seed=st.integers(0, 2**16),
)
def test_slices_cut_from_positions_equal_slices_captured(p, f, b, m, seed):
    # positions: what slice length 1 gives, optionally with a neighbourhood axis of m
    rng = np.random.default_rng(seed)
    out = torch.as_tensor(rng.standard_normal((b * (m or 1), T, f)))
    spec = LayerSpec("x", layout="bsf", slice_length=p)
    positions = LayerSpec("x", layout="bsf", slice_length=1).to_rows(out).numpy()
    direct = spec.to_rows(out).numpy()
    if m is not None:  # neighbour j of input i is input i * m + j; rows (inputs x slices, m, features)
        positions = positions.reshape(b, m, T, f).swapaxes(1, 2).reshape(b * T, m, f)
        direct = direct.reshape(b, m, T // p, p * f).swapaxes(1, 2).reshape(b * (T // p), m, p * f)
    np.testing.assert_array_equal(spec.cut(positions, b), direct)
    rows = rng.choice(b * (T // p), size=min(3, b * (T // p)), replace=False)
    np.testing.assert_array_equal(spec.cut(positions, b, rows), direct[rows])


def test_cut_in_many_blocks_equals_one_gather(monkeypatch):
    import equivtest.layers as layers

    out = torch.as_tensor(np.random.default_rng(1).standard_normal((5 * 3, T, 2)))
    positions = LayerSpec("x", layout="bsf", slice_length=1).to_rows(out).numpy()
    positions = positions.reshape(5, 3, T, 2).swapaxes(1, 2).reshape(5 * T, 3, 2)
    spec = LayerSpec("x", layout="bsf", slice_length=4)
    whole = spec.cut(positions, 5)
    monkeypatch.setattr(layers, "CUT_BLOCK_BYTES", 1)  # one row per block
    np.testing.assert_array_equal(spec.cut(positions, 5), whole)
    np.testing.assert_array_equal(spec.cut(positions, 5, [7, 0, 24]), whole[[7, 0, 24]])


def test_cut_refuses_a_slice_length_that_does_not_divide_and_ragged_positions():
    positions = np.zeros((2 * T, 3))
    with pytest.raises(ActivationError, match="slice_length 3 does not divide the sequence length 20"):
        LayerSpec("x", layout="bsf", slice_length=3).cut(positions, 2)
    with pytest.raises(ActivationError, match="not whole sequences of 3 inputs"):
        LayerSpec("x", layout="bsf", slice_length=2).cut(positions, 3)


def test_fit_slice_lengths_gives_what_fit_pair_gives_at_each_slice_length():
    # one capture cut per p against a capture per p: same rows (max_rows draws), same values, same fit
    net, other = ConvNet(seed=3), LstmNet(seed=2)
    sampler = Sampler(DatasetPoints(smooth_sequences(60), 60), GaussianNeighbourhood(16, 1e-4), seed=0)
    specs = LayerSpec("act", layout="bfs"), LayerSpec("lstm", output=0, layout="bsf")
    pair = NetworkPair(net, other, *specs, name="toy")
    config = FitConfig(n_eigenvectors=4, max_rows=100)
    test = smooth_sequences(119)[1::2][::6]
    fits = list(fit_slice_lengths(pair, sampler, (10, 4, 1), config))
    assert [f.pair.name for f in fits] == ["toy-p10", "toy-p4", "toy-p1"]
    for p, cut in zip((10, 4, 1), fits):
        sliced = NetworkPair(net, other, *(replace(s, slice_length=p) for s in specs))
        direct = fit_pair(sliced, sampler, config)
        for side in ("a", "b"):
            for mine, theirs in zip(cut.activations[side], direct.activations[side]):
                assert mine.shape == theirs.shape and mine.dtype == theirs.dtype
                np.testing.assert_array_equal(mine, theirs)
        np.testing.assert_allclose(cut.transformation.predict(cut.activations["a"][0], to="b"),
                                   direct.transformation.predict(direct.activations["a"][0], to="b"), rtol=1e-9, atol=1e-12)
        assert cut.evaluate(test).value("activation_mse", "a->b") == pytest.approx(
            direct.evaluate(test).value("activation_mse", "a->b"), rel=1e-9)


def test_fit_slice_lengths_needs_sequence_layers_of_equal_length():
    sampler = Sampler(DatasetPoints(smooth_sequences(20), 20), GaussianNeighbourhood(8, 1e-4), seed=0)
    flat = NetworkPair(ConvNet(), ConvNet(), "act", LayerSpec("act", layout="bfs"))
    with pytest.raises(EquivtestError, match="fit_slice_lengths needs sequence layers; layer 'act' has no layout"):
        next(fit_slice_lengths(flat, sampler, (5,)))
    uneven = NetworkPair(ConvNet(), HalvingConv(), LayerSpec("act", layout="bfs"), LayerSpec("conv", layout="bfs"))
    with pytest.raises(ActivationError, match=r"sequences differ in length \(a: 20, b: 10 positions\)"):
        next(fit_slice_lengths(uneven, sampler, (5,)))
