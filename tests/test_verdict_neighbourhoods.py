"""The diffusion-map rung through ``ladder_verdict``: its neighbourhood rows come from the pair's
pairing; where the rows' intrinsic dimension exceeds its eigenvectors the rung is undecidable
(not "not equivalent") and says why, while the rigid rungs still decide."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import equivtest
from equivtest.errors import FitConfigError
from equivtest.maps import DiffusionMap
from equivtest.sampling import GaussianNeighbourhood
from equivtest.verdict import NeighbourhoodRows, decide


def mlp(inputs: int, width: int = 12, seed: int = 0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh()).double().eval()


def test_rows_of_intrinsic_dimension_above_k_make_the_diffusion_rung_undecidable_with_the_reason():
    net = mlp(8)  # 8-dimensional inputs: rows of intrinsic dimension about 8 in a 12-wide layer
    x = np.random.default_rng(0).uniform(-1, 1, (160, 8))
    pair = equivtest.NetworkPair(net, net, "2", "2", task="regression")
    ladder = ("identity", "permutation", DiffusionMap(3))
    verdict = equivtest.ladder_verdict(pair, x, rungs=ladder, stop_at_pass=False, stitched=False,
                                       neighbourhood=GaussianNeighbourhood(16, 0.05))
    assert verdict.kind == "equivalent" and verdict.up_to == "identity", verdict.text  # the rigid rungs decide
    dims = verdict.diagnostics
    assert dims.intrinsic_dim_a >= 3 and dims.n_eigenvectors == 3 and dims.neighbourhood_rows == 16
    assert dims.neighbourhood_train_rows == 64  # 64 of the 120 training inputs (the default bound), one row each
    for direction in ("a->b", "b->a"):
        row = verdict.row(direction, "diffusion")
        assert not row.decidable and not row.passed and row.control_rel_error > 1e-3, row
        assert f"intrinsic dimension of {direction[0].upper()}'s rows ({dims.intrinsic_dim_a}" in row.reason
        assert f"raise n_eigenvectors to at least {dims.intrinsic_dim_a + 1}" in row.reason
    assert any("diffusion rung: the estimated intrinsic dimension" in h for h in dims.hints)
    alone = equivtest.ladder_verdict(pair, x, rungs=(DiffusionMap(3),), stitched=False,
                                     neighbourhood=GaussianNeighbourhood(16, 0.05))
    assert alone.kind == "undecidable" and "intrinsic dimension" in alone.text  # never "not equivalent"


def test_the_neighbourhood_rows_are_those_of_the_chosen_inputs_and_their_neighbours():
    from equivtest.check import neighbourhood_rows

    net, other = mlp(2), mlp(2, seed=1)
    x = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    pair = equivtest.NetworkPair(net, other, "2", "2", task="regression")
    chosen = np.array([3, 7, 20])
    found = neighbourhood_rows(pair, x, chosen, GaussianNeighbourhood(8, 0.01))
    with torch.no_grad():
        for rows, model, hood in ((found.a, net, found.na), (found.b, other, found.nb)):
            assert np.allclose(rows, model[:3](torch.as_tensor(x[chosen])).numpy())  # layer "2": before the Tanh
            assert hood.shape == (3, 8, 12) and np.abs(hood - rows[:, None]).max() < 0.1  # around each row
    assert found.groups.tolist() == [3, 7, 20]
    assert np.array_equal(found.na, neighbourhood_rows(pair, x, chosen, GaussianNeighbourhood(8, 0.01)).na)  # seeded


def test_the_diffusion_rung_without_a_neighbourhood_to_draw_is_a_clear_error():
    net = mlp(2)
    x = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    pair = equivtest.NetworkPair(net, net, "2", "2", task="regression")
    with pytest.raises(FitConfigError, match=r"Samples pairing draws none: pass neighbourhood=GaussianNeighbourhood"):
        equivtest.ladder_verdict(pair, x, rungs=("identity", DiffusionMap(3)))
    with pytest.raises(FitConfigError, match=r"neighbourhood_inputs must be a whole number"):
        equivtest.ladder_verdict(pair, x, rungs=(DiffusionMap(3),), neighbourhood=GaussianNeighbourhood(4, 0.1),
                                 neighbourhood_inputs=1.5)


def test_neighbourhood_inputs_bounds_what_is_captured_and_max_rows_what_is_fitted():
    net = mlp(1, width=3)
    x = np.linspace(-1, 1, 200)[:, None]
    pair = equivtest.NetworkPair(net, net, "2", "2", task="regression")
    verdict = equivtest.ladder_verdict(pair, x, rungs=(DiffusionMap(3, max_rows=40),), stitched=False,
                                       neighbourhood=GaussianNeighbourhood(8, 0.02), neighbourhood_inputs=60)
    assert verdict.diagnostics.neighbourhood_train_rows == 60
    assert verdict.row("a->b", "diffusion").details["rows"] == 40


def test_neighbourhood_rows_of_other_rows_must_come_from_training_inputs():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 3))
    groups = np.arange(60) + 100  # inputs numbered from 100
    nb = NeighbourhoodRows(a[:5], a[:5], a[:5, None].repeat(4, 1), a[:5, None].repeat(4, 1), np.arange(5))
    with pytest.raises(FitConfigError, match=r"inputs that have no rows in groups"):
        decide(a, a, groups, rungs=(DiffusionMap(3),), neighbourhoods=nb)
    with pytest.raises(FitConfigError, match=r"one neighbourhood for each of the 60 rows"):
        decide(a, a, groups, rungs=(DiffusionMap(3),), neighbourhoods=(a[:5, None], a[:5, None]))


def test_the_ladders_table_states_the_diagnostics_and_their_fixes():
    from equivtest.check import verdict_table

    net = mlp(8)
    x = np.random.default_rng(0).uniform(-1, 1, (160, 8))
    verdict = equivtest.ladder_verdict(equivtest.NetworkPair(net, net, "2", "2", task="regression"), x,
                                       rungs=("identity", DiffusionMap(3)), stop_at_pass=False, stitched=False,
                                       neighbourhood=GaussianNeighbourhood(16, 0.05), neighbourhood_inputs=40)
    notes = verdict_table(verdict).notes
    d = verdict.diagnostics
    assert "120 training rows of 120 inputs, 40 held-out rows of 40; widths A 12, B 12" in notes
    assert f"intrinsic dimension (local PCA) A {d.intrinsic_dim_a}, B {d.intrinsic_dim_b} against 3 eigenvectors" in notes
    assert "40 rows with neighbourhoods of 16" in notes
    assert f"Fix: diffusion rung: the estimated intrinsic dimension of A's rows ({d.intrinsic_dim_a}" in notes
