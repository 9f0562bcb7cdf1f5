"""Weight-space criteria asserted from a user's pytest file (run with pytester)."""

from __future__ import annotations

import ot  # noqa: F401  heavy imports before pytester's module snapshot (see test_plugin.py)
import gudhi  # noqa: F401
import torch  # noqa: F401

import equivtest.weights  # noqa: F401
import equivtest.weights.criteria  # noqa: F401

pytest_plugins = ["pytester"]

USER_TESTS = '''
import numpy as np
import pytest
import torch

from equivtest.weights import load_flat, flatten_parameters, weight_result


def make(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))


@pytest.fixture
def joint():
    return make(0)


def nudged(net, by):
    twin = make(0)
    return load_flat(twin, flatten_parameters(net)[0] + by)


def test_merged_network_within_tolerance_of_the_joint_one(joint):
    x = np.random.default_rng(0).normal(size=(16, 4))
    result = weight_result(nudged(joint, 1e-3), joint, inputs=x)
    result.assert_equivalent(weight_layerwise_mse=1e-5, weight_w2=1e-2, jacobian_frobenius=0.05)


def test_a_different_network_fails(joint):
    result = weight_result(make(1), joint, measures=["weight_layerwise_mse", "weight_norm_difference"])
    result.assert_equivalent(weight_layerwise_mse=1e-5)
'''


def test_weight_criteria_in_a_users_test_file(pytester):
    pytester.makepyfile(test_user=USER_TESTS)
    run = pytester.runpytest("-p", "no:cacheprovider", "-q")
    run.assert_outcomes(passed=1, failed=1)
    run.stdout.fnmatch_lines(["*is not equivalent by 1 criterion*", "*weight_layerwise_mse [[]a~b[]] = *required <= 1e-05*"])
