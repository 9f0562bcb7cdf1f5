"""Baselines: the plugin's create/pass/regress/regen cycle on the thesis's 1d pair.

Moved from tests/test_baseline.py with the thesis's networks (equivtest_thesis); the
comparison rules and safe loading are tested there.
"""

from __future__ import annotations

import equivtest.engine  # noqa: F401  (loaded before pytester snapshots sys.modules)
import equivtest.plugin  # noqa: F401

pytest_plugins = ["pytester"]


SUITE = """
import os
import torch
import equivtest
from equivtest_thesis.experiments import one_d


@equivtest.pair
def tanh_pair():
    pair = one_d.pair()
    scale = float(os.environ.get("PERTURB", "0"))
    if scale:
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in pair.b.parameters():
                p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return pair


def test_guarded(tanh_pair, equivtest_fit, equivtest_baseline):
    fitted = equivtest_fit(tanh_pair, one_d.sampler(), one_d.CONFIG)
    equivtest_baseline(fitted, fitted.evaluate(one_d.test_inputs()))
"""


def test_perturbed_network_fails_its_baseline_until_regenerated(pytester, monkeypatch):
    pytester.makepyfile(test_guarded=SUITE)
    args = ("-p", "no:cacheprovider", "--equivtest-no-summary")

    first = pytester.runpytest(*args)
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["*baseline created*", "*test_guarded/test_guarded.json*"])
    pytester.runpytest(*args).assert_outcomes(passed=1)

    monkeypatch.setenv("PERTURB", "0.05")
    changed = pytester.runpytest(*args)
    changed.assert_outcomes(failed=1)
    # the refit still finds the perturbed B equivalent to A (it is: the change is smooth
    # and invertible), but the stored transformation no longer lands on B's activations
    changed.stdout.fnmatch_lines([
        "*activation_mse [[]a->b[]] with the baseline's transformation: baseline *, now *",
        "*--equivtest-force-regen*",
    ])

    pytester.runpytest(*args, "--equivtest-force-regen").assert_outcomes(failed=1)
    pytester.runpytest(*args).assert_outcomes(passed=1)

    monkeypatch.delenv("PERTURB")
    pytester.runpytest(*args).assert_outcomes(failed=1)  # back to the original B: a change again
    regen_all = pytester.runpytest(*args, "--equivtest-regen-all")
    regen_all.assert_outcomes(failed=1)
    regen_all.stdout.fnmatch_lines(["*--equivtest-regen-all: baseline rewritten*"])
    pytester.runpytest(*args).assert_outcomes(passed=1)
