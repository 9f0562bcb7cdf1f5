"""The ladder's verdict through the one path and the plugin: a torch network against its
rotated and permuted copies (positive controls), and a shuffled pairing (the null)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import equivtest
from tests.test_plugin import output_of, project, run  # noqa: F401

pytest_plugins = ["pytester"]


def mlp(seed=0, width=12):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, 4)).double().eval()


def rotated_copy(net, seed=1, permute=False):
    """The same function, its second layer's output rotated (or permuted) and undone in the third."""
    copy = mlp()
    copy.load_state_dict(net.state_dict())
    width = copy[2].out_features
    gen = torch.Generator().manual_seed(seed)
    if permute:
        q = torch.eye(width, dtype=torch.float64)[torch.randperm(width, generator=gen)]
    else:
        q, _ = torch.linalg.qr(torch.randn(width, width, generator=gen, dtype=torch.float64))
    with torch.no_grad():
        copy[2].weight.copy_(q.T @ copy[2].weight)
        copy[2].bias.copy_(q.T @ copy[2].bias)
        # layer 3 reads tanh(layer 2): a rotation does not commute with tanh, so read before it
    return copy, q


@pytest.mark.parametrize("permute, rung", [(True, "permutation"), (False, "orthogonal")])
def test_rotated_and_permuted_copies_are_equivalent_and_a_shuffle_is_not(permute, rung):
    net = mlp()
    copy, q = rotated_copy(net, permute=permute)
    x = np.random.default_rng(0).uniform(-1, 1, (400, 3))
    pair = equivtest.NetworkPair(net, copy, "2", "2", task="classification")
    verdict = equivtest.ladder_verdict(pair, x, stitched=False)
    assert verdict.kind == "equivalent" and verdict.up_to == rung, verdict.text
    verdict.assert_equivalent(up_to=rung)
    row = verdict.row("a->b", rung)
    assert row.heldout_rel_error <= 1e-10 and row.null_ratio > 100

    order = np.random.default_rng(1).permutation(len(x))
    lookup = {tuple(v): x[j] for v, j in zip(x, order)}
    shuffled = equivtest.NetworkPair(net, net, "2", "2", task="classification",
                                     domain_map=lambda inputs: np.stack([lookup[tuple(v)] for v in inputs]))
    null = equivtest.ladder_verdict(shuffled, x)
    assert null.kind == "not_equivalent", null.text
    with pytest.raises(equivtest.NotEquivalentError):
        null.assert_equivalent(up_to="affine")


def test_stitched_agreement_through_the_pairing():
    net = mlp()
    twin = mlp()
    twin.load_state_dict(net.state_dict())
    x = np.random.default_rng(2).uniform(-1, 1, (200, 3))
    verdict = equivtest.ladder_verdict(equivtest.NetworkPair(net, twin, "1", "1", task="classification"), x)
    assert verdict.up_to == "identity"
    assert verdict.row("a->b", "identity").stitched == 1.0 and verdict.row("b->a", "identity").stitched == 1.0


def test_the_verdict_fixture_caches_and_lists_the_ladder(project):
    project.makepyfile(test_ladder="""
        import numpy as np
        import equivtest

        X = np.random.default_rng(0).uniform(-1, 1, (120, 1))


        def test_self(self_pair, equivtest_verdict):
            verdict = equivtest_verdict(self_pair, X)
            assert equivtest_verdict(self_pair, X.copy()) is verdict
            verdict.assert_equivalent(up_to="identity")
    """)
    result = run(project)
    result.assert_outcomes(passed=1)
    out = output_of(result)
    assert "Ladder" in out or "ladder" in out
    assert "identity" in out
