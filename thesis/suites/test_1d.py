"""Suite 1d: the thesis's experiment 1 (see equivtest_thesis.experiments.one_d)."""

import equivtest
from equivtest_thesis.experiments import one_d


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


def test_1d_holds_against_its_baseline(tanh_pair, equivtest_fit, equivtest_baseline):
    # Regression guard: no criterion may get more than twice as bad as the stored fit.
    # Fits are deterministic on one machine; the slack absorbs the small differences
    # that another CPU's floating point makes in training. A real change to a network
    # moves these errors by orders of magnitude.
    fitted = equivtest_fit(tanh_pair, one_d.sampler(), one_d.CONFIG)
    result = fitted.evaluate(one_d.test_inputs())
    equivtest_baseline(fitted, result, tolerances={"default": {"worse_by": 1.0, "atol": 1e-12}})
