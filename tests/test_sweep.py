"""Layer-by-layer sweeps (equivtest.sweep): the grid, same-architecture mode and its first failure,
one capture per network, the executor contract, bad input, baselines, the fixture and the CLI."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

import equivtest
from equivtest.errors import EquivtestError, LayerNotFoundError
from equivtest.sweep import SWEEP_LADDER, blocks, sweep
from equivtest.sweep_result import SweepResult
from tests.test_plugin import output_of, project, run  # noqa: F401

pytest_plugins = ["pytester"]

CELL_KEYS = {"i", "j", "layer_a", "layer_b", "kind", "up_to", "text", "directions", "cka"}
DIRECTION_KEYS = {"status", "rung", "rel_error", "stitched", "null_ratio"}


def mlp(seed=0, width=16):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 3)).double().eval()


def changed_at_layer_2(net, scale=0.3, seed=1):
    """A copy whose second linear layer's weights moved: layers 0-1 unchanged, 2 an affine change, 3-4 changed."""
    other = copy.deepcopy(net)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        other[2].weight.add_(scale * torch.randn(other[2].weight.shape, generator=gen, dtype=torch.float64))
    return other


def inputs(n=400, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 4))


@pytest.fixture(scope="module")
def diagonal():
    net = mlp()
    return sweep(equivtest.NetworkPair(net, changed_at_layer_2(net), "0", "0", names=("base", "changed")), inputs())


# -- layers ----------------------------------------------------------------------------------------


def test_blocks_finds_repeated_blocks_or_named_children():
    assert blocks(mlp()) == ["0", "1", "2", "3", "4"]

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU())

        def forward(self, x):
            return x + self.inner(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Linear(4, 4)
            self.stage = nn.Sequential(Residual(), Residual(), Residual())
            self.head = nn.Linear(4, 2)

    assert blocks(Net()) == ["stage.0", "stage.1", "stage.2"]  # not the Linear/ReLU inside each block


def test_blocks_of_a_transformer_are_its_layers():
    transformers = pytest.importorskip("transformers")
    from tests.test_hf_batching import tiny_bert

    assert blocks(tiny_bert()) == ["bert.encoder.layer.0", "bert.encoder.layer.1"]
    assert transformers  # used
    from tests.test_hf import tiny_wav2vec2

    # the convolutional feature encoder (channels x frames) is not a sequence of positions: not swept
    assert blocks(tiny_wav2vec2()) == ["wav2vec2.encoder.layers.0", "wav2vec2.encoder.layers.1"]


def test_an_audio_sweep_captures_every_layer_as_one_layer_captures():
    pytest.importorskip("transformers")
    from equivtest.adapters.hf import HFNetwork
    from equivtest.adapters.hf.batching import capture_sequences
    from tests.test_hf import tiny_wav2vec2

    net = HFNetwork(tiny_wav2vec2(), "wav2vec2.encoder.layers.0", "audio", predict=lambda m, kw: 0)
    rng = np.random.default_rng(0)
    waves = [rng.normal(size=int(n)).astype(np.float32) for n in rng.integers(400, 900, 12)]
    rows, groups, found = net.capture_layers(waves, blocks(net))
    for layer in blocks(net):
        one = capture_sequences(net.at(layer), waves)
        assert np.array_equal(rows[layer], np.concatenate(one))  # the same batches: the same rows
        assert np.array_equal(groups[layer], np.repeat(np.arange(len(waves)), [len(s) for s in one]))
    assert found == [0] * len(waves)  # a predict that cannot be batched: answered one input at a time
    assert all(r.dtype == np.float32 for r in rows.values())  # the model's precision
    rows64, _, _ = net.capture_layers(waves, blocks(net), dtype=np.float64)
    assert all(r.dtype == np.float64 and np.array_equal(r, rows[k]) for k, r in rows64.items())


def test_a_sweep_keeps_the_networks_precision_and_works_in_float64():
    # float32 networks: captured rows in float32 (half the memory), the same values as float64 rows;
    # a float64 network keeps float64 rows; the cells see float64 rows either way
    from equivtest.networks import TorchNetwork
    from equivtest.sweep import _test_rows, capture_side

    def as_network(module, layer):
        return TorchNetwork(module, layer)

    net32, x = mlp().float(), inputs(60).astype(np.float32)
    layers = [f"{k}" for k in range(5)]
    captured = capture_side(as_network(net32, "0"), x, layers)
    assert all(r.dtype == np.float32 for r in captured.rows.values())
    rows64, _, _ = as_network(net32, "0").capture_layers(x, layers, dtype=np.float64)
    assert all(np.array_equal(rows64[k], captured.rows[k]) for k in layers)
    assert all(r.dtype == np.float64 for r in capture_side(as_network(mlp(), "0"), x, layers).rows.values())

    class Shared:  # what _test_rows reads of a sweep's shared state
        pair = equivtest.NetworkPair(net32, net32, "0", "0")
        inputs, captures = x, {"a": captured, "b": captured}

    test = _test_rows(Shared, "2", "4")
    assert test.rows["a"].dtype == test.rows["b"].dtype == np.float64
    assert np.array_equal(test.rows["a"], captured.rows["2"])
    with pytest.raises(EquivtestError, match="float32 or float64"):
        as_network(net32, "0").capture_layers(x, layers, dtype=np.float16)


# -- the grid ----------------------------------------------------------------------------------------


def test_diagonal_sweep_names_the_first_layer_that_breaks(diagonal):
    assert diagonal.mode == "diagonal" and diagonal.rungs == SWEEP_LADDER
    kinds = {c.layer_a: (c.kind, c.up_to) for c in diagonal.cells}
    assert kinds["0"] == kinds["1"] == ("equivalent", "identity")
    assert kinds["2"] == ("equivalent", "affine")  # W' h + b against W h + b: an affine change of one layer
    assert kinds["3"][0] != "equivalent" and kinds["4"][0] != "equivalent"
    first = diagonal.first_failure
    assert first["layer_a"] == "3" and first["i"] == first["j"] == 3
    assert "x the limit" in first["by"] and first["rel_error"] > 1e-3
    assert diagonal.failure("identity")["layer_a"] == "2"  # below the identity rung it breaks one layer earlier
    for c in diagonal.cells:
        assert c.i == c.j
        assert 0.0 <= c.cka <= 1.0 + 1e-12
    assert diagonal.cell("0").direction("a->b").rel_error == 0.0
    # a failing direction reports the stitched score of the last rung (run even though its error misses)
    assert not np.isnan(diagonal.cell("3").direction("a->b").stitched)


def test_a_map_instance_in_the_ladder_keeps_its_parameters(diagonal):
    # layer 2 is an affine change: the cross-validated affine map carries it; one with a
    # penalty of 1e6 (in units of X^T X's mean eigenvalue) shrinks the map towards the mean
    from equivtest.maps import Affine

    net = mlp()
    penalised = sweep(equivtest.NetworkPair(net, changed_at_layer_2(net), "0", "0"), inputs(),
                      layers_a=["2"], layers_b=["2"], rungs=["identity", Affine(alpha=1e6)], up_to="affine",
                      stitched=False)
    assert penalised.rungs == ("identity", "affine")
    assert diagonal.cell("2").direction("a->b").rel_error < 1e-3
    assert penalised.cell("2").direction("a->b").rel_error > 0.5


def test_assert_equivalent_lists_the_failing_layers(diagonal):
    diagonal.assert_equivalent(up_to="affine", through="2")
    with pytest.raises(equivtest.NotEquivalentError) as caught:
        diagonal.assert_equivalent(up_to="affine")
    message = str(caught.value)
    assert "2 layer(s) fail, the first 3" in message and "  3 vs 3" in message and "  4 vs 4" in message
    with pytest.raises(equivtest.NotEquivalentError, match="the first 2"):
        diagonal.assert_equivalent(up_to="diagonal", through="2")
    with pytest.raises(EquivtestError, match="not a layer of the sweep"):
        diagonal.assert_equivalent(through="7")
    with pytest.raises(EquivtestError, match="not on the sweep's ladder"):
        diagonal.assert_equivalent(up_to="nonlinear")


def test_to_dict_follows_the_contract_and_round_trips(diagonal):
    data = json.loads(json.dumps(diagonal.to_dict()))
    assert set(data) == {"schema", "mode", "names", "layers_a", "layers_b", "rungs", "up_to", "first_failure", "cells"}
    assert data["schema"] == 1 and data["names"] == ["base", "changed"] and data["layers_a"] == list("01234")
    assert set(data["first_failure"]) == {"i", "j", "layer_a", "layer_b", "kind", "up_to", "rel_error", "by"}
    for cell in data["cells"]:
        assert set(cell) == CELL_KEYS
        assert set(cell["directions"]) == {"a->b", "b->a"}
        assert all(set(d) == DIRECTION_KEYS for d in cell["directions"].values())
    assert data["cells"][0]["directions"]["a->b"]["null_ratio"] == "inf"  # identity: no error at all
    again = SweepResult.from_dict(data, dict(diagonal.thresholds))
    assert again.to_dict() == diagonal.to_dict()


def test_grid_arrays(diagonal):
    rung = diagonal.grid("rung")
    assert rung.shape == (5, 5)
    assert rung[0, 0] == 0 and rung[2, 2] == SWEEP_LADDER.index("affine") and np.isnan(rung[3, 3])
    assert np.isnan(rung[0, 1])  # a diagonal sweep fits no off-diagonal cell
    err = diagonal.grid("rel_error", direction="b->a")
    assert err[0, 0] == 0.0 and err[3, 3] > 1e-3
    with pytest.raises(EquivtestError, match="grid"):
        diagonal.grid("accuracy")


def test_all_pairs_of_two_different_networks():
    result = sweep((mlp(0), mlp(5)), inputs(300), mode="all", stitched=False)
    assert result.mode == "all" and len(result.cells) == 25
    assert sorted((c.i, c.j) for c in result.cells) == [(i, j) for i in range(5) for j in range(5)]
    assert result.grid("cka").shape == (5, 5) and not np.isnan(result.grid("cka")).any()
    assert len(result.matches()) == 5  # the best match of each layer of A


def test_the_same_network_is_equivalent_up_to_the_identity_everywhere():
    net = mlp()
    result = sweep(equivtest.NetworkPair(net, net, "0", "0", task="regression"), inputs(200))
    assert all(c.kind == "equivalent" and c.up_to == "identity" for c in result.cells)
    assert result.first_failure is None
    for c in result.cells:
        assert c.direction("a->b").stitched == 1.0  # the output R^2 of the stitched network


# -- one capture, and the executor -------------------------------------------------------------------


class CountingForward(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.seen = net, 0

    def forward(self, x):
        self.seen += len(x)
        return self.net(x)


def test_each_network_is_captured_once_for_every_layer():
    a, b = CountingForward(mlp()), CountingForward(mlp(3))
    layers = [f"net.{k}" for k in range(5)]
    pair = equivtest.NetworkPair(a, b, "net.0", "net.0")
    sweep(pair, inputs(500), layers, layers, mode="all", stitched=False)
    assert a.seen == b.seen == 500  # each input through each network once: its passes recorded all 5 layers


class RecordingEngine:
    """An executor that records what it is given (the contract: map(fn, shared, items, progress))."""

    name = "recording"

    def __init__(self):
        self.items, self.shared = [], set()

    def map(self, fn, shared, items, progress=None):
        import pickle

        pickle.dumps((fn, shared))  # what a distributed engine must ship: picklable, fn module-level
        self.items = list(items)
        out = []
        for item in items:
            self.shared.add(id(shared))
            out.append(json.loads(json.dumps(fn(shared, item))))  # a plain JSON-able dict
        return out


def test_cells_run_through_the_executor_and_match_in_process():
    net = mlp()
    pair = equivtest.NetworkPair(net, changed_at_layer_2(net), "0", "0")
    engine = RecordingEngine()
    remote = sweep(pair, inputs(), engine=engine)
    here = sweep(pair, inputs())
    assert engine.items == [(k, k) for k in range(5)] and len(engine.shared) == 1
    assert remote.to_dict() == here.to_dict()


# -- bad input ---------------------------------------------------------------------------------------


def test_a_layer_that_does_not_exist_lists_close_names():
    net = mlp()
    with pytest.raises(LayerNotFoundError, match=r"network b: .*no layer '5'.*blocks"):
        sweep((net, net), inputs(100), ["0"], ["5"])
    big = nn.Sequential()
    big.add_module("encoder", nn.Sequential(*[nn.Linear(4, 4) for _ in range(3)]))
    with pytest.raises(LayerNotFoundError, match=r"did you mean 'encoder\.1'"):
        sweep((big, big), inputs(100), ["encoder.l1"])


def test_too_few_inputs_are_refused_before_any_capture():
    net = CountingForward(mlp())
    with pytest.raises(equivtest.FitConfigError, match="held-out inputs"):
        sweep((net, net), inputs(12), ["net.0"])
    assert net.seen == 0


def test_same_architecture_mode_needs_a_layer_in_common():
    net = mlp()
    with pytest.raises(EquivtestError, match=r"have none in common; sweep every pair with mode='all'"):
        sweep((net, net), inputs(100), ["0", "1"], ["2", "3"], mode="diagonal")
    with pytest.raises(EquivtestError, match="mode must be one of"):
        sweep((net, net), inputs(100), mode="upper")


def test_a_pair_whose_inputs_differ_is_refused():
    net = mlp()
    pair = equivtest.NetworkPair(net, net, "0", "0", domain_map=lambda x: -x)
    with pytest.raises(EquivtestError, match="domain_map: its networks take different inputs"):
        sweep(pair, inputs(100))


def test_a_transformers_pair_with_different_tokenizers_is_refused():
    pytest.importorskip("transformers")
    from equivtest.adapters.hf import HFNetwork
    from tests.test_hf import sentences, word_tokenizer
    from tests.test_hf_batching import tiny_bert

    model = tiny_bert()
    tok = word_tokenizer()
    shifted = lambda text: [int(t) + 1 for t in tok(text)["input_ids"]]  # noqa: E731 - another vocabulary
    pair = equivtest.NetworkPair(HFNetwork(model, "bert.encoder.layer.0", "text", tokenizer=tok, name="one"),
                                 HFNetwork(model, "bert.encoder.layer.0", "text", tokenizer=shifted, name="two"))
    with pytest.raises(EquivtestError, match="tokenizers differ: input 0 .* same tokenizer"):
        sweep(pair, sentences(30))


# -- transformers ------------------------------------------------------------------------------------


def test_a_transformers_sweep_captures_every_layer_as_one_layer_captures():
    pytest.importorskip("transformers")
    from equivtest.adapters.hf import HFNetwork
    from equivtest.adapters.hf.batching import answers, capture_sequences
    from tests.test_hf import sentences, word_tokenizer
    from tests.test_hf_batching import tiny_bert

    base = tiny_bert()
    changed = copy.deepcopy(base)
    with torch.no_grad():
        changed.bert.encoder.layer[1].output.dense.weight.add_(0.5 * torch.randn(32, 64, generator=torch.Generator().manual_seed(0)))
    tok = word_tokenizer()
    a = HFNetwork(base, "bert.encoder.layer.0", "text", tokenizer=tok, name="base")
    b = HFNetwork(changed, "bert.encoder.layer.0", "text", tokenizer=tok, name="changed")
    texts = sentences(120)
    rows, groups, found = a.capture_layers(texts, blocks(a))
    for layer in blocks(a):
        one = capture_sequences(a.at(layer), texts)
        assert np.array_equal(rows[layer], np.concatenate(one))
        assert np.array_equal(groups[layer], np.repeat(np.arange(len(texts)), [len(s) for s in one]))
    assert found == answers(a, texts)
    result = sweep(equivtest.NetworkPair(a, b, names=("base", "changed")), texts)
    assert result.mode == "diagonal"
    assert result.cell("bert.encoder.layer.0").up_to == "identity"
    assert result.first_failure["layer_a"] == "bert.encoder.layer.1"
    assert result.cell("bert.encoder.layer.0").direction("a->b").stitched == 1.0  # agreement of the answers


# -- baselines ---------------------------------------------------------------------------------------


def _with_cell(result: SweepResult, layer: str, **direction_changes) -> SweepResult:
    data = result.to_dict()
    for cell in data["cells"]:
        if cell["layer_a"] == layer:
            cell["directions"]["a->b"].update(direction_changes)
    return SweepResult.from_dict(data, dict(result.thresholds))


def test_a_sweep_baseline_holds_rungs_exactly_and_errors_within_tolerance(diagonal, tmp_path):
    from equivtest.baseline import check_sweep_baseline, read_baseline

    first = check_sweep_baseline(tmp_path, "mlp", diagonal, "base vs changed")
    assert first.status == "created" and not (tmp_path / "mlp.npz").exists()
    assert read_baseline(tmp_path / "mlp.json")["transformation"] is None  # figures only
    assert check_sweep_baseline(tmp_path, "mlp", diagonal, "base vs changed").status == "passed"

    looser = _with_cell(diagonal, "1", rung="permutation")
    outcome = check_sweep_baseline(tmp_path, "mlp", looser, "base vs changed")
    assert outcome.status == "regressed"
    assert any("rung [1|1|a->b] regressed" in m for m in outcome.messages)

    worse = diagonal.cell("3").direction("a->b").rel_error * 1.5
    outcome = check_sweep_baseline(tmp_path, "mlp", _with_cell(diagonal, "3", rel_error=worse), "base vs changed")
    assert outcome.status == "regressed" and any("rel_error [3|3|a->b]" in m for m in outcome.messages)

    regen = check_sweep_baseline(tmp_path, "mlp", looser, "base vs changed", regen=True)
    assert regen.status == "regenerated"
    assert check_sweep_baseline(tmp_path, "mlp", looser, "base vs changed").status == "passed"


def test_a_sweep_baseline_edited_by_hand_is_refused(diagonal, tmp_path):
    from equivtest.baseline import BaselineError, check_sweep_baseline

    check_sweep_baseline(tmp_path, "mlp", diagonal, "p")
    path = tmp_path / "mlp.json"
    path.write_text(path.read_text().replace('"value": 5.0', '"value": 0.0', 1))
    with pytest.raises(BaselineError, match="checksum"):
        check_sweep_baseline(tmp_path, "mlp", diagonal, "p")


# -- pytest and the command line ---------------------------------------------------------------------

SWEEP_TEST = """
import numpy as np
import torch
from torch import nn
import equivtest

X = np.random.default_rng(0).normal(size=(200, 4))


def net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).double().eval()


@equivtest.pair(ladder_inputs=X)
def twins():
    a = net()
    return equivtest.NetworkPair(a, a, "0", "0", name="twins")


def test_sweep(twins, equivtest_sweep, equivtest_sweep_baseline):
    result = equivtest_sweep(twins, X)
    assert equivtest_sweep(twins, X.copy()) is result
    result.assert_equivalent(up_to="identity", through="2")
    equivtest_sweep_baseline(result)
"""


def test_the_sweep_fixture_records_and_summarises(project, tmp_path):
    project.makepyfile(test_sw=SWEEP_TEST)
    reports = tmp_path / "reports"
    result = run(project, f"--equivtest-report-dir={reports}")
    result.assert_outcomes(failed=1)  # the baseline did not exist: written, and the test fails once
    assert "sweep baseline created" in output_of(result)
    result = run(project, f"--equivtest-report-dir={reports}")
    result.assert_outcomes(passed=1)
    out = output_of(result)
    assert "Sweep net vs. net" not in out and "Sweep a vs. b: layer by layer" in out
    assert "no layer pair falls below affine" in out
    records = sorted(reports.glob("*/record.json"))
    assert records
    record = json.loads(records[-1].read_text())
    assert record["sweep"]["layers_a"] == ["0", "1", "2"] and record["result"]["passed"] is True


def test_the_sweep_command(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from equivtest.cli import app

    (tmp_path / "pairs.py").write_text(SWEEP_TEST + """

@equivtest.pair(ladder_inputs=X)
def changed():
    a = net()
    b = net()
    with torch.no_grad():
        b[2].weight.add_(0.5)
    return equivtest.NetworkPair(a, b, "0", "0", name="changed")
""")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    ok = runner.invoke(app, ["sweep", "pairs.py::twins", "--report-dir", str(tmp_path / "runs")])
    assert ok.exit_code == 0, ok.output
    assert "every layer equivalent up to affine" in ok.output and "record:" in ok.output
    folder = next((tmp_path / "runs").glob("*/record.json")).parent
    record = json.loads((folder / "record.json").read_text())
    assert record["sweep"]["mode"] == "diagonal"
    assert "id='sweep-heatmap'" in (folder / "report.html").read_text()  # the page draws the sweep
    broken = runner.invoke(app, ["sweep", "pairs.py::changed", "--up-to", "identity", "--no-record"])
    assert broken.exit_code == 1 and "first layer not equivalent up to identity: 2" in broken.output
    bad = runner.invoke(app, ["sweep", "pairs.py::twins", "--layers-a", "0,9", "--no-record"])
    assert bad.exit_code == 2 and "no layer '9'" in bad.output
