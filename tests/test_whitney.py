"""Intrinsic dimension and the Whitney 2d+1 check."""

import numpy as np
import pytest

from equivtest.capture import layer_widths
from equivtest.errors import FitConfigError
from equivtest.whitney import estimate_intrinsic_dimension, whitney_check
from tests._nets import tanh_mlp


def test_intrinsic_dimension_of_a_curve_a_surface_and_a_cloud():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    circle_in_3d = np.stack([np.cos(t), np.sin(t), 0.3 * np.cos(t)], axis=1)
    assert estimate_intrinsic_dimension(circle_in_3d) == 1
    uv = rng.uniform(-1, 1, (2000, 2))
    plane_in_4d = uv @ rng.standard_normal((2, 4))
    assert estimate_intrinsic_dimension(plane_in_4d) == 2
    assert estimate_intrinsic_dimension(rng.standard_normal((3000, 3))) == 3


def test_intrinsic_dimension_needs_samples():
    with pytest.raises(FitConfigError, match="at least 3 samples"):
        estimate_intrinsic_dimension(np.zeros((2, 1)))


def test_whitney_uses_the_narrowest_layer_before_the_chosen_one():
    net = tanh_mlp(0, widths=(2, 3, 9, 9, 1))  # fc1 is 3 wide: below 2d+1 = 5 for d = 2
    widths = layer_widths(net, np.zeros((2, 2)), "act3")
    assert [name for name, _ in widths] == ["fc1", "act1", "fc2", "act2", "fc3", "act3"]
    check = whitney_check(widths, 9, intrinsic_dim=2)
    assert check.narrowest == ("fc1", 3) and check.value == 3 and not check.passed
    assert whitney_check(widths, 9, intrinsic_dim=1).passed  # 2d+1 = 3
