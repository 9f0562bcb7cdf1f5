"""The vibration run's memory discipline: a fit is let go before the next one is cut.

At the full profile one fit's activations are gigabytes (p = 10: 2,600 neighbourhoods
of 1024 x 160), so a fit still held while the next is cut and fitted adds that much to
the peak. Checked on untrained networks and a tiny profile: the discipline is the
run's loop, not the networks'.
"""

import weakref

import torch

from equivtest import engine
from equivtest_thesis.experiments import vibration
from equivtest.layers import LayerSpec
from equivtest_thesis.zoo.vibration import ConvTransformerNet, LstmNet
from equivtest_thesis.zoo.vibration_data import make_splits


def test_the_run_lets_each_fit_go_before_the_next_is_cut(monkeypatch):
    torch.manual_seed(0)
    splits = make_splits(seed=0)
    monkeypatch.setattr(vibration, "networks", lambda log=None, noise_snr_db=None: (LstmNet(), ConvTransformerNet(), {"networks": {}, "splits": splits}))
    monkeypatch.setitem(vibration.PROFILES, "tiny",
                        {"samples": 8, "max_rows": 40, "neighbourhood": 4, "n_eigenvectors": 3, "epsilon_k": 3})
    fitted_arrays, held_at_cut = [], []
    real_fit, real_cut = engine._fit, LayerSpec.cut

    def watched_fit(*args):
        fitted = real_fit(*args)
        fitted_arrays.append(weakref.ref(fitted.activations["b"][1]))
        return fitted

    def watched_cut(self, *args, **kwargs):
        held_at_cut.append(sum(ref() is not None for ref in fitted_arrays))
        return real_cut(self, *args, **kwargs)

    monkeypatch.setattr(engine, "_fit", watched_fit)
    monkeypatch.setattr(LayerSpec, "cut", watched_cut)
    outcome = vibration.run(profile="tiny", report_dir=None, slice_lengths=(25, 10, 2))
    assert [r.pair for r in outcome.results] == ["vibration-p25", "vibration-p10", "vibration-p2"]
    assert len(fitted_arrays) == 3
    # four cuts per fit (samples and neighbourhoods of both networks), none while an earlier fit lives
    assert held_at_cut == [0] * 12
