"""Suite 1d: the thesis's experiment 1 (see equivtest.experiments.one_d)."""

import equivtest
from equivtest.experiments import one_d


@equivtest.pair
def tanh_pair():
    return one_d.pair()


def test_1d_meets_the_thesis_figures(tanh_pair, equivtest_fit):
    fitted = equivtest_fit(tanh_pair, one_d.sampler(), one_d.CONFIG)
    result = fitted.evaluate(one_d.test_inputs())
    result.assert_equivalent(**one_d.THRESHOLDS)


def test_1d_whitney_flags_the_one_wide_layer(tanh_pair, equivtest_fit):
    # A's hidden layer has 1 neuron, below 2d+1 = 3 for the 1-d input manifold; B's has 8.
    fitted = equivtest_fit(tanh_pair, one_d.sampler(), one_d.CONFIG)
    checks = {c.direction: c for c in fitted.whitney()}
    assert checks["a"].value == 1 and checks["a"].passed is False
    assert checks["b"].value == 8 and checks["b"].passed is True
