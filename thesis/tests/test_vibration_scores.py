"""The classification scores of the vibration tables against hand counts and scikit-learn."""

import numpy as np
from hypothesis import given, settings, strategies as st
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from equivtest_thesis.experiments.vibration import classification_scores


def test_scores_of_a_hand_counted_example():
    # tp=2, fn=1, fp=1, tn=4
    labels = [1, 1, 1, 0, 0, 0, 0, 0]
    pred = [1, 1, 0, 1, 0, 0, 0, 0]
    s = classification_scores(pred, labels)
    assert s == {"accuracy": 6 / 8, "precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3, "tnr": 4 / 5}


@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=60))
@settings(max_examples=60, deadline=None)
def test_scores_match_scikit_learn(pairs):
    pred, labels = (np.array(x) for x in zip(*pairs))
    s = classification_scores(pred, labels)
    assert np.isclose(s["accuracy"], accuracy_score(labels, pred))
    if pred.sum():
        assert np.isclose(s["precision"], precision_score(labels, pred, zero_division=0))
    else:
        assert np.isnan(s["precision"])
    if labels.sum():
        assert np.isclose(s["recall"], recall_score(labels, pred, zero_division=0))
    assert np.isclose(s["f1"], f1_score(labels, pred, zero_division=0))
    if (labels == 0).any():
        assert np.isclose(s["tnr"], recall_score(1 - labels, 1 - pred, zero_division=0))


def test_windows_containing_nan_are_a_clear_error():
    # A NaN in a window (a sensor dropout) must stop the fit at the samples, naming them,
    # not surface later as a failed eigensolve or NaN criteria.
    import pytest
    import torch

    from equivtest.engine import fit_pair
    from equivtest.errors import EquivtestError
    from equivtest_thesis.experiments import vibration
    from equivtest_thesis.zoo.vibration import ConvTransformerNet, LstmNet

    torch.manual_seed(0)
    windows = np.random.default_rng(0).normal(size=(12, 100, 2)).astype(np.float32)
    windows[5, 17, 1] = np.nan
    pair = vibration.pair(25, LstmNet().eval(), ConvTransformerNet().eval())
    profile = dict(vibration.PROFILES["ci"], n_eigenvectors=3, epsilon_k=2)
    with pytest.raises(EquivtestError, match=r"item 5 holds a non-finite value \(nan at position \(17, 1\)\)"):
        fit_pair(pair, vibration.sampler(windows, 12, 8), vibration.config(profile))
