"""The verdict's bad input gets a clear error naming the fix: too few held-out inputs, a width
mismatch where only same-width rungs are asked for, rows with NaN (whose fix is not delta)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import equivtest
from equivtest import Transformation
from equivtest.errors import ActivationError, EquivtestError, FitConfigError
from equivtest.maps import LADDER, make_rung
from equivtest.verdict import decide


def rows(n_inputs=40, per_input=3, width=8, seed=0):
    rng = np.random.default_rng(seed)
    return np.tanh(rng.normal(size=(n_inputs * per_input, width))), np.repeat(np.arange(n_inputs), per_input)


def mlp(width=6):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 3)).double().eval()


def test_too_few_heldout_inputs_through_the_pair_names_how_many_inputs_are_needed():
    net = mlp()
    pair = equivtest.NetworkPair(net, net, "1", "1", task="classification")
    x = np.random.default_rng(0).uniform(-1, 1, (12, 2))
    with pytest.raises(FitConfigError, match=r"only 3 of 12 inputs would be held out.*capture rows of more inputs "
                                             r"\(at least 20\) or raise heldout"):
        equivtest.ladder_verdict(pair, x)


@pytest.mark.parametrize("rung", ["identity", "permutation"])
def test_a_width_mismatch_for_identity_or_permutation_is_a_clear_error(rung):
    a, groups = rows()
    b = a[:, :5]
    with pytest.raises(FitConfigError, match=rf"no rung on the ladder \['{rung}'\] can map between these layers: the "
                                             rf"{rung} map needs layers of one width, got 8 and 5 features; use the "
                                             r"affine or nonlinear map"):
        decide(a, b, groups, rungs=(rung,))
    with pytest.raises(FitConfigError, match=r"needs layers of one width, got 8 and 5"):
        make_rung(rung).fit(a, b, groups)


def test_on_a_full_ladder_the_same_width_rungs_are_skipped_with_the_reason_and_affine_decides():
    a, groups = rows()
    b = a @ np.random.default_rng(1).normal(size=(8, 5))
    verdict = decide(a, b, groups, rungs=LADDER[:5])
    identity = verdict.row("a->b", "identity")
    assert identity.decidable and not identity.passed and "needs layers of one width, got 8 and 5" in identity.reason
    assert verdict.direction("a->b").rung == "affine"


def test_rows_with_nan_are_refused_with_their_position_and_a_fix_that_is_not_delta():
    a, groups = rows()
    bad = a.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ActivationError, match=r"rows of the target network \(Y\) contains 1 non-finite values "
                                              r"\(NaN first at index \(4, 2\)\)") as info:
        decide(a, bad, groups)
    assert "delta plays no part" in str(info.value) and "leave out the inputs that hold NaN" in str(info.value)
    bad[4, 2] = np.inf
    with pytest.raises(ActivationError, match=r"overflowed.*float32") as info:
        decide(bad, a, groups)


def test_nan_inputs_to_the_pair_are_refused_with_the_input_named():
    net = mlp()
    x = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    x[9, 1] = np.nan
    with pytest.raises(EquivtestError, match=r"1 input\(s\) hold NaN or inf \(first: input 9\)"):
        equivtest.ladder_verdict(equivtest.NetworkPair(net, net, "1", "1", task="classification"), x)


@pytest.mark.parametrize("bad, says, not_says", [(np.nan, "leave out the inputs that hold NaN", "overflowed"),
                                                 (np.inf, "overflowed on the inputs", "leave out the inputs that hold")])
def test_transformation_predict_names_the_fix_for_rows_to_map_not_delta(bad, says, not_says):
    rng = np.random.default_rng(0)
    t = np.linspace(-1, 1, 60)
    x = np.stack([np.cos(t), np.sin(t)], axis=1)
    nx = x[:, None, :] + 0.01 * rng.normal(size=(60, 8, 2))
    fitted = Transformation(3).fit(x, nx, x, nx)
    test = x[:5].copy()
    test[2, 1] = bad
    with pytest.raises(ActivationError, match=r"activations of network A contains 1 non-finite values") as info:
        fitted.predict(test, to="b")
    message = str(info.value)
    assert says in message and not_says not in message
    assert "lower the neighbourhood scale delta" not in message and "delta plays no part" in message
