"""End-to-end tests of the pytest plugin (``equivtest.plugin``, loaded via ``pytest11``).

Each test writes a small test project with ``pytester`` and runs pytest on it. The
networks are tiny float64 MLPs (1 -> 8 -> 1, tanh) built inline with fixed seeds, so
a fit takes well under a second.

The projects run in this process (``pytester.runpytest``): a fresh interpreter per
run would spend most of its time importing torch and datafold. That is safe because
everything heavy the runs use is imported here first, so pytester's snapshot of
``sys.modules`` keeps it and no C extension is imported twice; the generated conftest
patches ``equivtest.engine.fit_pair`` only through a monkeypatch it undoes. The entry
point itself is checked in a fresh interpreter by the ``--help`` test.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

# Heavy imports up front, before any pytester snapshot (see the module docstring).
import datafold  # noqa: F401
import rich.console  # noqa: F401
import rich.table  # noqa: F401
import scipy.interpolate  # noqa: F401
import sklearn  # noqa: F401
import torch

import equivtest
import equivtest.engine  # noqa: F401
import equivtest.persist  # noqa: F401
import equivtest.plugin  # noqa: F401
import equivtest.record  # noqa: F401
import equivtest.report.terminal  # noqa: F401
from equivtest.capture import capture

pytest_plugins = ["pytester"]

# Shared by every generated project: the networks, the sampler and the test inputs
# (module ``eqnets``), the pairs and a counter of real fits (conftest). The plugin
# looks ``fit_pair`` up on equivtest.engine at call time, so wrapping it counts fits.
EQNETS = """
from collections import OrderedDict

import numpy as np
import torch
from torch import nn

import equivtest


class Fold(nn.Module):
    \"\"\"(x - centre) ** 2: folds the input line, so the layer after it is not injective.\"\"\"

    def __init__(self, centre):
        super().__init__()
        self.centre = centre

    def forward(self, x):
        return (x - self.centre) ** 2


def mlp(seed, fold=None):
    torch.manual_seed(seed)
    layers = OrderedDict(fc1=nn.Linear(1, 8), act1=nn.Tanh(), out=nn.Linear(8, 1))
    if fold is not None:
        layers = OrderedDict(fold=Fold(fold), **layers)
    return nn.Sequential(layers).double().eval()


def make_sampler():
    return equivtest.Sampler(
        equivtest.GridPoints(-1.0, 1.0, 256),
        equivtest.GaussianNeighbourhood(128, 0.05, convention="std"),
        seed=0,
    )


SAMPLER = make_sampler()
CONFIG = equivtest.FitConfig(n_eigenvectors=3)
# Inside the sampled interval, away from its ends (no extrapolation).
TEST_INPUTS = np.linspace(-0.9, 0.9, 101)[:, None]
"""

CONFTEST = """
import pytest

import equivtest
import equivtest.engine
from eqnets import mlp


@pytest.fixture(scope="session", autouse=True)
def fit_calls():
    calls = []
    real = equivtest.engine.fit

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(equivtest.engine, "fit", counting)
        yield calls


@pytest.fixture(scope="session")
def fitted_log():
    return []


@equivtest.pair
def self_pair():
    net = mlp(0)
    return equivtest.NetworkPair(net, net, "act1", "act1", name="self-pair", names=("net", "net-again"))


@equivtest.pair
def folded_pair():
    # B squares (x - 0.3) before its MLP: A's layer maps into B's, but not back.
    return equivtest.NetworkPair(mlp(0), mlp(1, fold=0.3), "act1", "act1", name="folded")
"""

TEST_SELF = """
from eqnets import CONFIG, SAMPLER, TEST_INPUTS


def test_self_pair_is_equivalent(self_pair, equivtest_fit):
    fitted = equivtest_fit(self_pair, SAMPLER, CONFIG)
    result = fitted.evaluate(TEST_INPUTS)
    result.assert_equivalent(activation_mse=1e-6)
"""


@pytest.fixture
def project(pytester, monkeypatch):
    """A pytester project with the shared networks and conftest."""
    monkeypatch.setenv("EQUIVTEST_CACHE", os.environ.get("EQUIVTEST_CACHE", str(pytester.path / "eqcache")))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)
    pytester.makepyfile(eqnets=EQNETS)
    pytester.makeconftest(CONFTEST)
    return pytester


def run(pytester, *args):
    return pytester.runpytest("-p", "no:cacheprovider", "--color=no", *args)


def output_of(result) -> str:
    return "\n".join(result.outlines + result.errlines)


def summary_rows(out: str, pair: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("│") and f" {pair} " in line]


def test_self_pair_passes_and_the_summary_lists_the_criteria(project):
    project.makepyfile(test_self=TEST_SELF)
    result = run(project)
    result.assert_outcomes(passed=1)
    out = output_of(result)
    assert re.search(r"^=+ equivtest =+$", out, re.M), out
    assert "equivtest: equivalence criteria" in out
    rows = summary_rows(out, "self-pair")
    # activation_mse, output_mse and diffusion_residual in both directions, the neighbour
    # overlap, kernel_components and whitney for a and b, and the reference measures: cka,
    # cka_debiased, procrustes_distance, and a linear stitch (activation and output MSE) in
    # both directions.
    assert len(rows) == 18, out
    assert any("cka" in r and "a<->b" in r for r in rows)
    assert any("neighbour_overlap" in r and "a<->b" in r for r in rows)
    for side in ("a", "b"):  # the 1d grid's kernel graph is connected
        row = next(r for r in rows if "kernel_components" in r and f" {side} " in r)
        assert re.search(r"│\s+1 │", row), row
    for direction in ("a->b", "b->a"):
        row = next(r for r in rows if "activation_mse" in r and direction in r)
        assert "≤ 1e-06" in row and "pass" in row, row
        assert any("output_mse" in r and direction in r for r in rows)
        assert any("diffusion_residual" in r and direction in r for r in rows)
    assert "FAIL" not in out
    # No report dir, no records.
    assert "record:" not in out


def test_non_equivalent_pair_fails_with_a_readable_equivalence_failure(project):
    path = project.makepyfile(
        test_folded="""
        from eqnets import CONFIG, SAMPLER, TEST_INPUTS


        def test_folded_pair(folded_pair, equivtest_fit):
            fitted = equivtest_fit(folded_pair, SAMPLER, CONFIG)
            result = fitted.evaluate(TEST_INPUTS)
            result.assert_equivalent(activation_mse=1e-6)
        """
    )
    lines = path.read_text().splitlines()
    assert_line = 1 + next(i for i, line in enumerate(lines) if "assert_equivalent" in line)
    result = run(project)
    result.assert_outcomes(failed=1)
    out = output_of(result)

    header = re.search(r"EquivalenceFailure: pair 'folded' is not equivalent by (\d+) criterion\(s\):", out)
    assert header, out
    listed = re.findall(r"^E\s+- (\w+) \[([a-z>-]+)\] = ", out, re.M)
    assert len(listed) == int(header.group(1)), out
    # Only the direction that missed is listed: B's folded layer cannot be mapped back into A's.
    # only the traceback's "E" lines: with CI set, pytest repeats the message in its summary
    found = re.findall(r"^E\s+- activation_mse \[(a->b|b->a)\] = ([-+0-9.e]+), required <= 1e-06", out, re.M)
    assert [d for d, _ in found] == ["b->a"], out
    assert float(found[0][1]) > 1e-3

    # The traceback ends at the user's line: assert_equivalent's own frame is hidden.
    assert re.search(rf"^{path.name}:{assert_line}: EquivalenceFailure$", out, re.M), out
    assert re.search(r"^>\s+result\.assert_equivalent\(activation_mse=1e-6\)$", out, re.M), out
    assert "criteria.py:" not in out

    # The summary still lists the evaluated pair, the failure marked.
    rows = summary_rows(out, "folded")
    assert any("activation_mse" in r and "b->a" in r and "FAIL" in r for r in rows), out
    assert any("activation_mse" in r and "a->b" in r and "pass" in r for r in rows), out


def test_the_fit_runs_once_per_session_for_one_pair_sampler_and_config(project):
    project.makepyfile(
        test_a_first="""
        from eqnets import CONFIG, SAMPLER, TEST_INPUTS


        def test_first(self_pair, equivtest_fit, fitted_log):
            fitted = equivtest_fit(self_pair, SAMPLER, CONFIG)
            fitted_log.append(fitted)
            fitted.evaluate(TEST_INPUTS).assert_equivalent(activation_mse=1e-6)


        def test_second_same_module(self_pair, equivtest_fit, fitted_log):
            fitted_log.append(equivtest_fit(self_pair, SAMPLER, CONFIG))
        """,
        test_b_second="""
        import equivtest
        from eqnets import CONFIG, SAMPLER, make_sampler


        def test_other_module_equal_sampler(self_pair, equivtest_fit, fitted_log, fit_calls):
            # A distinct but equal sampler and an equal config hit the same cache entry.
            assert make_sampler() is not SAMPLER
            fitted_log.append(equivtest_fit(self_pair, make_sampler(), equivtest.FitConfig(n_eigenvectors=3)))
            assert len(fit_calls) == 1
            assert all(f.fitted is fitted_log[0].fitted for f in fitted_log)
            assert len(fitted_log) == 3


        def test_another_config_is_another_fit(self_pair, equivtest_fit, fitted_log, fit_calls):
            other = equivtest_fit(self_pair, SAMPLER, equivtest.FitConfig(n_eigenvectors=4))
            assert other.fitted is not fitted_log[0].fitted
            assert len(fit_calls) == 2
            assert equivtest_fit(self_pair, SAMPLER, equivtest.FitConfig(n_eigenvectors=4)).fitted is other.fitted
            assert len(fit_calls) == 2
        """,
    )
    result = run(project, "-v")
    result.assert_outcomes(passed=4)


def test_report_dir_writes_one_record_per_evaluated_result(project, tmp_path):
    report_dir = tmp_path / "reports"
    project.makepyfile(
        test_records="""
        import numpy as np
        from eqnets import CONFIG, SAMPLER, TEST_INPUTS


        def test_asserted(self_pair, equivtest_fit):
            fitted = equivtest_fit(self_pair, SAMPLER, CONFIG)
            fitted.evaluate(TEST_INPUTS).assert_equivalent(
                activation_mse=1e-6, output_mse={"a->b": 1e-6, "b->a": None}
            )


        def test_only_evaluated(self_pair, equivtest_fit):
            fitted = equivtest_fit(self_pair, SAMPLER, CONFIG)
            fitted.evaluate(np.linspace(-0.5, 0.5, 7)[:, None])
        """
    )
    result = run(project, f"--equivtest-report-dir={report_dir}")
    result.assert_outcomes(passed=2)
    out = output_of(result)

    folders = sorted(p for p in report_dir.iterdir())
    assert len(folders) == 2, folders
    assert all(p.is_dir() and p.name.startswith("self-pair-") for p in folders)
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == ["plots.npz", "record.json", "transformation.npz"]
        assert f"record: {folder / 'record.json'}" in out

    records = {}
    for folder in folders:
        record = json.loads((folder / "record.json").read_text())
        assert record["schema"] == "equivtest.run"
        assert record["schema_version"] == 1
        assert record["artefacts"] == {"transformation": "transformation.npz", "plots": "plots.npz"}
        assert record["pair"]["name"] == "self-pair"
        assert record["pair"]["layers"]["a"]["path"] == "act1"
        assert record["sampler"]["points"] == {"kind": "GridPoints", "lower": -1.0, "upper": 1.0, "n": 256}
        assert record["fit"]["n_samples"] == 256 and record["fit"]["neighbourhood_size"] == 128
        records[record["result"]["info"]["n_test"]] = record
    assert sorted(records) == [7, 101]

    # Thresholds asserted in the test (after evaluate) are in the record.
    asserted = {(c["name"], c["direction"]): c for c in records[101]["result"]["criteria"]}
    assert asserted["activation_mse", "a->b"]["threshold"] == 1e-6
    assert asserted["activation_mse", "b->a"]["threshold"] == 1e-6
    assert asserted["output_mse", "a->b"]["threshold"] == 1e-6
    assert asserted["output_mse", "b->a"]["threshold"] is None
    assert asserted["activation_mse", "a->b"]["passed"] is True
    assert asserted["output_mse", "b->a"]["passed"] is None
    assert records[101]["result"]["passed"] is True
    informative = {(c["name"], c["direction"]): c for c in records[7]["result"]["criteria"]}
    assert informative["activation_mse", "a->b"]["threshold"] is None
    assert informative["activation_mse", "a->b"]["passed"] is None

    # The saved transformation loads back and maps the network's activations onto
    # themselves (the same network as self_pair in the project, rebuilt here).
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        OrderedDict(fc1=torch.nn.Linear(1, 8), act1=torch.nn.Tanh(), out=torch.nn.Linear(8, 1))
    ).double().eval()
    acts = capture(net, np.linspace(-0.8, 0.8, 33)[:, None], "act1")
    for folder in folders:
        loaded = equivtest.Transformation.load(folder / "transformation.npz")
        assert loaded.get_params()["n_eigenvectors"] == 3
        for to in ("a", "b"):
            predicted = loaded.predict(acts, to=to)
            assert predicted.shape == acts.shape
            assert np.mean((predicted - acts) ** 2) < 1e-6


def test_no_summary_option_suppresses_the_table(project):
    project.makepyfile(test_self=TEST_SELF)
    result = run(project, "--equivtest-no-summary")
    result.assert_outcomes(passed=1)
    out = output_of(result)
    assert "equivtest: equivalence criteria" not in out
    assert not re.search(r"^=+ equivtest =+$", out, re.M), out
    assert not summary_rows(out, "self-pair")


def test_no_table_when_nothing_was_evaluated(project):
    project.makepyfile(
        test_plain="""
        def test_plain():
            pass  # evaluates no pair
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1)
    assert not re.search(r"^=+ equivtest =+$", output_of(result), re.M)


def test_pair_fixture_returning_something_else_errors_naming_the_fixture(project):
    project.makepyfile(
        test_bad_pair="""
        import equivtest


        @equivtest.pair
        def not_a_pair():
            return "just a string"


        def test_uses_it(not_a_pair):
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(errors=1)
    out = output_of(result)
    assert "@equivtest.pair fixture 'not_a_pair' returned str" in out, out
    assert "return equivtest.NetworkPair(a, b, layer_a, layer_b)" in out


def test_pair_fixture_with_options_keeps_name_scope_and_arguments(project):
    project.makepyfile(
        test_named_pair="""
        import pytest
        import equivtest
        from eqnets import mlp

        BUILT = []


        @pytest.fixture(scope="module")
        def layer_name():
            return "act1"


        @equivtest.pair(name="my_pair", scope="module")
        def build_the_pair(layer_name):
            BUILT.append(1)
            net = mlp(0)
            return equivtest.NetworkPair(net, net, layer_name, layer_name, name="named", names=("x", "y"))


        def test_one(my_pair):
            assert isinstance(my_pair, equivtest.NetworkPair)
            assert my_pair.layer_a.path == "act1"


        def test_two(my_pair):
            assert len(BUILT) == 1
        """
    )
    result = run(project)
    result.assert_outcomes(passed=2)


def test_named_pair_fixture_error_names_the_fixture(project):
    project.makepyfile(
        test_bad_named_pair="""
        import equivtest


        @equivtest.pair(name="renamed_pair")
        def _make():
            return 42


        def test_uses_it(renamed_pair):
            pass
        """
    )
    result = run(project)
    result.assert_outcomes(errors=1)
    assert "@equivtest.pair fixture 'renamed_pair' returned int" in output_of(result)


def test_fit_cache_tells_custom_point_sources_apart(project):
    project.makepyfile(
        test_custom_source="""
        import numpy as np
        import equivtest
        from eqnets import CONFIG


        class Line:
            # A PointSource that is not a dataclass: describe() only sees its class name.
            def __init__(self, lower, upper, n):
                self.lower, self.upper, self.n = lower, upper, n

            def points(self, rng):
                return np.linspace(self.lower, self.upper, self.n)[:, None]


        def test_two_sources(self_pair, equivtest_fit):
            nb = equivtest.GaussianNeighbourhood(64, 0.05, convention="std")
            left = equivtest.Sampler(Line(-1.0, 0.0, 64), nb)
            right = equivtest.Sampler(Line(0.0, 1.0, 64), nb)
            first = equivtest_fit(self_pair, left, CONFIG)
            second = equivtest_fit(self_pair, right, CONFIG)
            assert second.sampler is right
            assert second.samples.samples.min() >= 0.0
        """
    )
    result = run(project)
    result.assert_outcomes(passed=1)


def test_options_are_listed_in_help_under_the_equivtest_group(pytester, monkeypatch):
    # A fresh interpreter: the plugin comes from the pytest11 entry point alone.
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--help")
    assert result.ret == 0
    lines = result.outlines
    header = lines.index("network equivalence (equivtest):")
    group = []
    for line in lines[header + 1:]:
        if not line.strip():
            break
        group.append(line)
    text = "\n".join(group)
    assert "--equivtest-report-dir=DIR" in text
    assert "--equivtest-no-summary" in text
    assert "write a JSON record" in text


def test_loading_the_plugin_does_not_import_torch():
    code = "import sys, equivtest, equivtest.plugin; sys.exit(int('torch' in sys.modules or 'datafold' in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
