"""The plugin serves transformers pairs as it serves torch pairs, and shared fits keep
each evaluation's own arrays.

The transformers models are tiny BERT sequence classifiers saved with
``save_pretrained`` into a local directory (the hub is not reachable, and a local
directory is what a hub id resolves to), loaded by path through ``HFNetwork``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import equivtest.adapters.hf  # noqa: F401  (imported before pytester snapshots sys.modules)
import equivtest.report.html  # noqa: F401
from tests.test_plugin import output_of, project, run  # noqa: F401  (the shared pytester project)

pytest_plugins = ["pytester"]
transformers = pytest.importorskip("transformers")
try:  # transformers 5.25 kernelizes every model it loads (package kernels): imported before pytester's
    # snapshot too, or the second in-process run imports kernels again and its Mode flags stop comparing
    import transformers.integrations.hub_kernels  # noqa: F401
except ImportError:  # an older transformers
    pass

WORDS = "the a film movie is was good bad great awful funny boring story actors plot not very and but".split()

HFNETS = """
import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers

import equivtest
from equivtest.adapters.hf import HFNetwork, Positions

WORDS = {words!r}


def save_bert(folder, seed):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=len(WORDS) + 2, hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32, num_labels=2, pad_token_id=0,
                                  max_position_embeddings=32)
    transformers.BertForSequenceClassification(cfg).eval().save_pretrained(folder)
    tk = Tokenizer(models.WordLevel({{w: i for i, w in enumerate(["[PAD]", "[UNK]"] + WORDS)}}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]").save_pretrained(folder)


def sentences(n, seed):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(3, 9))) for _ in range(n)]


def network(folder):
    return HFNetwork(str(folder), "bert.encoder.layer.0", "text", model_class="AutoModelForSequenceClassification")


SAMPLES = sentences(16, 0)
TEST = sentences(8, 1)
CONFIG = equivtest.FitConfig(n_eigenvectors=4)
PAIRING = Positions(equivtest.GaussianNeighbourhood(8, 0.05), positions=4)
"""

HFCONFTEST = """
import os
from pathlib import Path

import equivtest
from hfnets import PAIRING, network, save_bert

MODELS = Path(__file__).parent / "models"


def pytest_configure(config):
    for name, seed in (("bert-a", 0), ("bert-b", 1)):
        if not (MODELS / name).exists():
            save_bert(MODELS / name, seed)


@equivtest.pair
def bert_pair():
    return equivtest.NetworkPair(network(MODELS / "bert-a"), network(MODELS / "bert-b"), name="berts",
                                 names=("bert-a", "bert-b"), pairing=PAIRING)


@equivtest.pair(name="bert_self")
def _self():
    net = network(MODELS / "bert-a")
    return equivtest.NetworkPair(net, net, name="bert-self", names=("bert", "bert-again"), pairing=PAIRING)
"""


@pytest.fixture
def hf_project(project):
    project.makepyfile(hfnets=HFNETS.format(words=WORDS))
    (project.path / "conftest.py").write_text(HFCONFTEST)
    return project


def test_a_transformers_pair_through_pair_fit_and_the_summary(hf_project):
    hf_project.makepyfile(test_hf_pair="""
        from hfnets import CONFIG, SAMPLES, TEST
        from equivtest.adapters.hf import HFNetwork


        def test_self(bert_self, equivtest_fit):
            assert isinstance(bert_self.a, HFNetwork)
            fitted = equivtest_fit(bert_self, SAMPLES, CONFIG)
            assert equivtest_fit(bert_self, list(SAMPLES), CONFIG).fitted is fitted.fitted  # same content, one fit
            result = fitted.evaluate(TEST)
            # the same network on both sides: a linear map is exact, whatever the diffusion maps do.
            # Whitney's d is estimated from the token rows here (9 > what 16 features carry): informative only
            result.assert_equivalent(linear_agreement=1.0, linear_activation_mse=1e-12, whitney=None)
            names = {c.name for c in result.criteria}
            assert {"agreement", "activation_mse", "whitney", "cka", "linear_agreement"} <= names


        def test_two_berts(bert_pair, equivtest_fit):
            result = equivtest_fit(bert_pair, SAMPLES, CONFIG).evaluate(TEST)
            assert {c.direction for c in result.criteria if c.name == "agreement"} == {"a->b", "b->a"}
    """)
    result = run(hf_project)
    result.assert_outcomes(passed=2)
    out = output_of(result)
    assert "bert-self" in out and "linear_agreement" in out


def test_transformers_baseline_writes_passes_regresses_when_a_weight_changes_and_regenerates(hf_project):
    hf_project.makepyfile(test_hf_baseline="""
        from hfnets import CONFIG, SAMPLES, TEST


        def test_held(bert_pair, equivtest_fit, equivtest_baseline):
            fitted = equivtest_fit(bert_pair, SAMPLES, CONFIG)
            equivtest_baseline(fitted, fitted.evaluate(TEST))
    """)
    first = run(hf_project)
    first.assert_outcomes(failed=1)
    assert "baseline created" in output_of(first)
    stored = hf_project.path / "test_hf_baseline" / "test_held.json"
    assert stored.exists()
    run(hf_project).assert_outcomes(passed=1)

    # A weight of B's layer 0 changes on disk (its output's LayerNorm gain, x10). The diffusion-map
    # transformation predicts these token rows poorly (activation MSE of order 10, the failure the
    # ladder of maps addresses), so a change must move the rows well beyond that error to show.
    import torch

    folder = hf_project.path / "models" / "bert-b"
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.bert.encoder.layer[0].output.LayerNorm.weight.mul_(10.0)
    model.save_pretrained(folder)
    regressed = run(hf_project)
    regressed.assert_outcomes(failed=1)
    out = output_of(regressed)
    assert "baseline regressed" in out and "a network's activations changed" in out, out

    run(hf_project, "--equivtest-force-regen").assert_outcomes(failed=1)
    run(hf_project).assert_outcomes(passed=1)


def test_transformers_null_calibration_and_html_report(hf_project, tmp_path):
    hf_project.makepyfile(test_hf_null="""
        from hfnets import CONFIG, SAMPLES, TEST


        def test_null(bert_pair, equivtest_fit):
            equivtest_fit(bert_pair, SAMPLES, CONFIG).evaluate(TEST)
    """)
    reports = tmp_path / "reports"
    result = run(hf_project, "--equivtest-null", "3", f"--equivtest-report-dir={reports}", "--equivtest-html")
    result.assert_outcomes(passed=1)
    (folder,) = list(reports.iterdir())
    record = json.loads((folder / "record.json").read_text())
    found = {(c["name"], c["direction"]): c for c in record["result"]["criteria"]}
    for direction in ("a->b", "b->a"):
        assert "3 shuffle(s)" in found["null_activation_mse", direction]["detail"]
        assert found["null_ratio", direction]["value"] > 0
    assert record["pair"]["kind"] == "hf" and record["sampler"]["pairing"]["kind"] == "positions"
    html = (folder / "report.html").read_text()
    assert "berts" in html and "<svg" in html or "<img" in html


SHARED = """
import numpy as np
from eqnets import CONFIG, SAMPLER


def test_first_on_the_left(self_pair, equivtest_fit, equivtest_baseline):
    fitted = equivtest_fit(self_pair, SAMPLER, CONFIG)
    result = fitted.evaluate(np.linspace(-1.0, 1.0, 40)[:, None])
    equivtest_baseline(fitted, result)


def test_second_on_the_right(self_pair, equivtest_fit):
    fitted = equivtest_fit(self_pair, SAMPLER, CONFIG)
    fitted.evaluate(np.linspace(1.5, 3.0, 30)[:, None])
"""


def test_two_tests_evaluating_one_shared_fit_keep_their_own_arrays(project, tmp_path):
    project.makepyfile(test_shared=SHARED)
    reports = tmp_path / "reports"
    run(project, f"--equivtest-report-dir={reports}").assert_outcomes(passed=1, failed=1)  # baseline created once
    second = run(project, f"--equivtest-report-dir={reports}")
    # the first test's baseline passes: its held check reads its own inputs, not the last evaluation's
    second.assert_outcomes(passed=2)
    inputs = {}
    for folder in reports.iterdir():
        record = json.loads((folder / "record.json").read_text())
        with np.load(folder / "plots.npz") as plots:
            inputs.setdefault(record["result"]["info"]["n_test"], []).append(plots["test_inputs"].ravel())
    assert sorted(inputs) == [30, 40]
    for x in inputs[40]:
        assert x.min() == -1.0 and x.max() == 1.0
    for x in inputs[30]:
        assert x.min() == 1.5 and x.max() == 3.0
