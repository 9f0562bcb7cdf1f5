"""Activation capture: batched forward passes with a hook, compared to the thesis's one-sample-at-a-time way."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from equivtest.capture import LayerSpec, capture, capture_neighbourhoods, layer_widths
from equivtest.errors import ActivationError
from equivtest.sampling import GaussianNeighbourhood, GridPoints, Sampler


def make_mlp(seed: int = 0, dtype=torch.float64) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(1, 8), act1=nn.Tanh(), fc2=nn.Linear(8, 1)))
    return model.to(dtype)


class CallCounter(nn.Module):
    """Identity that counts its forward calls."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


class Boom(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom in forward")


class Twice(nn.Module):
    """Uses the same activation module twice in one forward pass."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(1, 4).double()
        self.act = nn.Tanh()
        self.out = nn.Linear(4, 1).double()

    def forward(self, x):
        return self.out(self.act(self.fc(self.act(x))))


def no_hooks_left(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks for m in model.modules()
    )


def reference_capture(model: nn.Module, inputs: np.ndarray, path: str) -> np.ndarray:
    """The thesis's way: a hook and a full forward pass per input, one at a time."""
    module = model.get_submodule(path)
    out = []
    for row in inputs:
        seen = []
        handle = module.register_forward_hook(lambda _m, _i, o: seen.append(o.detach().reshape(1, -1).clone()))
        try:
            with torch.no_grad():
                model(torch.as_tensor(row[None], dtype=torch.float64))
        finally:
            handle.remove()
        assert len(seen) == 1
        out.append(seen[0].double().numpy())
    return np.concatenate(out)


@pytest.fixture(scope="module")
def model():
    return make_mlp(0)


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(0).uniform(-1, 1, size=(50, 1))


@pytest.fixture(scope="module")
def reference(model, inputs):
    return {path: reference_capture(model, inputs, path) for path in ("fc1", "act1", "fc2")}


# -- batched equals one-at-a-time -------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 50, 51, 1000])
@pytest.mark.parametrize("path", ["fc1", "act1", "fc2"])
def test_batched_equals_per_sample_reference(model, inputs, reference, batch_size, path):
    got = capture(model, inputs, path, batch_size=batch_size)
    assert got.dtype == np.float64 and got.shape == reference[path].shape
    np.testing.assert_allclose(got, reference[path], rtol=0, atol=1e-12)


@given(
    n=st.integers(min_value=1, max_value=50),
    batch_size=st.integers(min_value=1, max_value=80),
    stop_early=st.booleans(),
)
def test_batched_equals_per_sample_property(model, inputs, reference, n, batch_size, stop_early):
    got = capture(model, inputs[:n], "act1", batch_size=batch_size, stop_early=stop_early)
    np.testing.assert_allclose(got, reference["act1"][:n], rtol=0, atol=1e-12)
    assert no_hooks_left(model)


def test_capture_accepts_a_tensor(model, inputs, reference):
    got = capture(model, torch.as_tensor(inputs), "act1", batch_size=9)
    np.testing.assert_allclose(got, reference["act1"], rtol=0, atol=1e-12)


def test_capture_neighbourhoods_splits_samples_and_neighbourhoods(model):
    sample_set = Sampler(GridPoints(-1, 1, 16), GaussianNeighbourhood(8, 0.05), seed=0).draw()
    s, nb = capture_neighbourhoods(model, sample_set.samples, sample_set.neighbourhoods, "act1", batch_size=10)
    assert s.shape == (16, 8) and nb.shape == (16, 8, 8)
    np.testing.assert_allclose(s, reference_capture(model, sample_set.samples, "act1"), rtol=0, atol=1e-12)
    flat = sample_set.neighbourhoods.reshape(16 * 8, 1)
    np.testing.assert_allclose(nb.reshape(16 * 8, 8), reference_capture(model, flat, "act1"), rtol=0, atol=1e-12)


def test_progress_reports_every_batch(model, inputs):
    seen = []
    capture(model, inputs, "act1", batch_size=20, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(20, 50), (40, 50), (50, 50)]


# -- stopping early ---------------------------------------------------------------------


def counting_model():
    base = make_mlp(0)
    return nn.Sequential(OrderedDict(fc1=base.fc1, act1=base.act1, counter=CallCounter(), fc2=base.fc2))


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_stop_early_gives_the_same_activations(model, inputs, batch_size):
    early = capture(model, inputs, "act1", batch_size=batch_size, stop_early=True)
    full = capture(model, inputs, "act1", batch_size=batch_size, stop_early=False)
    np.testing.assert_array_equal(early, full)


def test_stop_early_skips_later_layers(inputs):
    """With stop_early the data never reaches the layers after the chosen one.

    (At most one single-sample pass may reach them: room for a check that the layer
    runs once per pass, see test_layer_running_twice_is_refused_with_stop_early.)
    """
    net = counting_model()
    seen_by_fc2 = []
    handle = net.fc2.register_forward_pre_hook(lambda _m, args: seen_by_fc2.append(args[0].shape[0]))
    try:
        capture(net, inputs, "act1", batch_size=7, stop_early=True)
        assert net.counter.calls <= 1 and sum(seen_by_fc2) <= 1
        seen_by_fc2.clear()
        net.counter.calls = 0
        capture(net, inputs, "act1", batch_size=7, stop_early=False)
        assert net.counter.calls == 8 and seen_by_fc2 == [7] * 7 + [1]  # ceil(50 / 7) batches
    finally:
        handle.remove()
    assert no_hooks_left(net)


def test_last_layer_with_stop_early(model, inputs, reference):
    np.testing.assert_allclose(capture(model, inputs, "fc2", stop_early=True), reference["fc2"], rtol=0, atol=1e-12)


# -- hooks are always removed -----------------------------------------------------------


def test_hooks_removed_after_capture(model, inputs):
    for stop_early in (True, False):
        capture(model, inputs, "act1", batch_size=16, stop_early=stop_early)
        assert no_hooks_left(model)


def test_hooks_removed_when_a_later_layer_raises(inputs):
    base = make_mlp(0)
    net = nn.Sequential(OrderedDict(fc1=base.fc1, act1=base.act1, boom=Boom(), fc2=base.fc2))
    net.train()
    with pytest.raises(RuntimeError, match="boom in forward"):
        capture(net, inputs, "act1", stop_early=False)
    assert no_hooks_left(net)
    assert net.training  # and the mode is restored on the way out


def test_hooks_removed_when_the_chosen_layer_raises(inputs):
    base = make_mlp(0)
    net = nn.Sequential(OrderedDict(fc1=base.fc1, boom=Boom(), fc2=base.fc2))
    for stop_early in (True, False):
        with pytest.raises(RuntimeError, match="boom in forward"):
            capture(net, inputs, "boom", stop_early=stop_early)
        assert no_hooks_left(net)


def test_hooks_removed_when_layer_output_is_not_a_tensor(inputs):
    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 2).double()
            self.pair = Pair()

        def forward(self, x):
            return self.pair(self.fc(x))[0]

    net = Net()
    with pytest.raises(ActivationError, match=r"layer 'pair' returns a tuple of 2 items; say which to use with LayerSpec\('pair', output=0\)"):
        capture(net, inputs, "pair")
    assert no_hooks_left(net)


# -- neuron selection -------------------------------------------------------------------


def test_neuron_selection_with_a_list(model, inputs, reference):
    got = capture(model, inputs, LayerSpec("act1", [0, 3, 5]))
    np.testing.assert_allclose(got, reference["act1"][:, [0, 3, 5]], rtol=0, atol=1e-12)


def test_neuron_selection_with_a_slice(model, inputs, reference):
    got = capture(model, inputs, LayerSpec("act1", slice(None, None, 2)), batch_size=7)
    assert got.shape == (50, 4)
    np.testing.assert_allclose(got, reference["act1"][:, ::2], rtol=0, atol=1e-12)


def test_neuron_selection_is_described_as_plain_data():
    plain = {"output": None, "layout": None, "slice_length": None}
    assert LayerSpec("act1", slice(None, None, 2)).describe() == {"path": "act1", "neurons": "slice(None, None, 2)", **plain}
    assert LayerSpec("act1", (np.int64(1), 4)).describe() == {"path": "act1", "neurons": [1, 4], **plain}
    assert LayerSpec.of("act1") == LayerSpec("act1")


# -- the model's mode -------------------------------------------------------------------


@pytest.mark.parametrize("training", [True, False])
def test_training_flag_restored(inputs, training):
    net = make_mlp(0)
    net.train(training)
    capture(net, inputs, "act1")
    assert net.training is training
    assert all(m.training is training for m in net.modules())


def test_capture_runs_in_eval_mode(inputs):
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(fc1=nn.Linear(1, 8), drop=nn.Dropout(0.5), act1=nn.Tanh())).double()
    net.train()
    got = capture(net, inputs, "act1")
    net.eval()
    with torch.no_grad():
        expected = net(torch.as_tensor(inputs)).numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_mixed_training_flags_restored(inputs):
    """BUG: capture restores only the top-level flag with model.train(was_training), which
    also switches every submodule to that mode: a submodule kept in eval mode inside a
    training model (a frozen BatchNorm, say) comes back in train mode."""
    net = make_mlp(0)
    net.train()
    net.fc2.eval()
    capture(net, inputs, "act1")
    assert net.training is True
    assert net.fc2.training is False


# -- layer widths -----------------------------------------------------------------------


def test_layer_widths_in_run_order(model):
    x = np.zeros((2, 1))
    assert layer_widths(model, x, "act1") == [("fc1", 8), ("act1", 8)]
    assert layer_widths(model, x, "fc2") == [("fc1", 8), ("act1", 8), ("fc2", 1)]
    assert layer_widths(model, x, "fc1") == [("fc1", 8)]
    assert no_hooks_left(model)


def test_layer_widths_follow_run_order_not_definition_order():
    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Linear(3, 2).double()  # defined first, runs last
            self.early = nn.Linear(1, 3).double()

        def forward(self, x):
            return self.late(torch.tanh(self.early(x)))

    assert layer_widths(Reordered(), np.zeros((2, 1)), "late") == [("early", 3), ("late", 2)]


def test_layer_widths_of_a_container_and_flattened_outputs():
    net = nn.Sequential(OrderedDict(
        block=nn.Sequential(nn.Linear(6, 12), nn.Tanh()),
        shape=nn.Unflatten(1, (3, 4)),
        flat=nn.Flatten(),
        head=nn.Linear(12, 2),
    )).double()
    widths = layer_widths(net, np.zeros((2, 6)), "flat")
    # containers are not listed (their leaves are), except the chosen layer itself
    assert widths == [("block.0", 12), ("block.1", 12), ("shape", 12), ("flat", 12)]
    assert layer_widths(net, np.zeros((2, 6)), "block") == [("block.0", 12), ("block.1", 12), ("block", 12)]
    assert no_hooks_left(net)


def test_layer_widths_do_not_change_the_model():
    """BUG: layer_widths runs the forward pass in whatever mode the model is in, so a
    model in train mode has its BatchNorm running statistics updated by a mere
    width query (and a batch of one sample fails in BatchNorm)."""
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(fc1=nn.Linear(1, 4), bn=nn.BatchNorm1d(4), fc2=nn.Linear(4, 1))).double()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert layer_widths(net, np.array([[0.1], [0.7]]), "bn") == [("fc1", 4), ("bn", 4)]
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert net.training


# -- layers that run more or less than once ---------------------------------------------


def test_layer_running_twice_is_refused(inputs):
    with pytest.raises(ActivationError, match=r"layer 'act' ran 2 times for 1 batches.*exactly once per forward pass"):
        capture(Twice(), inputs, "act", stop_early=False)
    with pytest.raises(ActivationError, match=r"ran 6 times for 3 batches"):
        capture(Twice(), inputs, "act", batch_size=20, stop_early=False)


def test_layer_running_twice_is_refused_with_stop_early(inputs):
    """BUG: with the default stop_early=True the hook stops the pass at the layer's
    first run, so a layer that runs twice silently gives its first-call activations."""
    net = Twice()
    with pytest.raises(ActivationError, match=r"exactly once per forward pass"):
        capture(net, inputs, "act")
    assert no_hooks_left(net)


def test_layer_never_run_is_refused(inputs):
    class WithUnused(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = make_mlp(0)
            self.unused = nn.Tanh()

        def forward(self, x):
            return self.body(x)

    with pytest.raises(ActivationError, match=r"layer 'unused' ran 0 times.*exactly once per forward pass"):
        capture(WithUnused(), inputs, "unused")


# -- dtypes -----------------------------------------------------------------------------


def test_float32_model_with_float64_input(inputs):
    net = make_mlp(0, dtype=torch.float32)
    got = capture(net, inputs, "act1", batch_size=16)
    assert got.dtype == np.float64 and got.shape == (50, 8)
    with torch.no_grad():
        expected = net.act1(net.fc1(torch.as_tensor(inputs, dtype=torch.float32))).double().numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-7)
    # the float32 values are the float64 network's up to float32 rounding
    np.testing.assert_allclose(got, capture(make_mlp(0), inputs, "act1"), rtol=0, atol=1e-5)


def test_float64_model_with_float32_input(model, inputs, reference):
    got = capture(model, inputs.astype(np.float32), "act1")
    assert got.dtype == np.float64
    expected = reference_capture(model, inputs.astype(np.float32).astype(np.float64), "act1")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_integer_inputs_are_kept_as_integers():
    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(emb=nn.Embedding(10, 3), flat=nn.Flatten())).double()
    tokens = np.array([[1, 2], [3, 9]])
    got = capture(net, tokens, "flat")
    assert got.shape == (2, 6) and got.dtype == np.float64
    np.testing.assert_array_equal(got, net.emb.weight.detach().numpy()[tokens].reshape(2, 6))


def test_fit_reports_capture_progress_through_its_stage_callback():
    # Long captures (the vibration suite's full profile pushes 665,600 windows through a
    # transformer) must show movement; the stage callback is throttled, and always
    # reports the finished count.
    from equivtest.pairing import throttled_progress as _throttled_progress

    seen = []
    progress = _throttled_progress(seen.append, "capturing net", every_s=3600.0)
    for done in range(100, 1001, 100):
        progress(done, 1000)
    assert seen == ["capturing net: 1,000/1,000 inputs"]
    eager = _throttled_progress(seen.append, "capturing net", every_s=0.0)
    eager(5, 10)
    assert seen[-1] == "capturing net: 5/10 inputs"
    assert _throttled_progress(None, "x") is None
