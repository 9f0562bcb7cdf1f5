"""Criterion thresholds and the readable assertion."""

import pytest

from equivtest.criteria import EquivalenceFailure, EquivalenceResult, criterion
from equivtest.errors import EquivtestError


def make_result():
    return EquivalenceResult(
        "demo",
        [
            criterion("activation_mse", "a->b", 1e-3),
            criterion("activation_mse", "b->a", 1e-7),
            criterion("agreement", "a->b", 0.95),
        ],
    )


def test_without_thresholds_everything_is_informative():
    result = make_result()
    assert result.passed and all(c.passed is None for c in result.criteria)


def test_a_number_applies_to_both_directions_and_a_mapping_to_one():
    result = make_result().with_thresholds({"activation_mse": 1e-5})
    assert result.get("activation_mse", "a->b").passed is False
    assert result.get("activation_mse", "b->a").passed is True
    one = make_result().with_thresholds({"activation_mse": {"b->a": 1e-5}})
    assert one.get("activation_mse", "a->b").threshold is None and one.passed


def test_higher_is_better_for_agreement():
    assert make_result().with_thresholds({"agreement": 0.9}).passed
    assert not make_result().with_thresholds({"agreement": 0.99}).passed


def test_failure_message_names_criterion_value_and_threshold():
    with pytest.raises(EquivalenceFailure) as info:
        make_result().assert_equivalent(activation_mse=1e-5, agreement=0.99)
    message = str(info.value)
    assert "2 criterion(s)" in message
    assert "activation_mse [a->b] = 0.001, required <= 1e-05" in message
    assert "agreement [a->b] = 0.95, required >= 0.99" in message
    assert isinstance(info.value, AssertionError)


def test_assert_equivalent_returns_a_new_result_and_leaves_the_old_one_alone():
    result = make_result()
    checked = result.assert_equivalent(activation_mse={"b->a": 1e-5})
    assert checked.get("activation_mse", "b->a").threshold == 1e-5
    assert result.get("activation_mse", "b->a").threshold is None
    assert result.with_thresholds({"agreement": 0.5}) is not result
    with pytest.raises(Exception):
        result.criteria = ()  # frozen
    with pytest.raises(TypeError):
        result.info["x"] = 1  # read-only


def test_a_nan_criterion_never_passes_a_threshold():
    from equivtest.criteria import Criterion

    assert Criterion("agreement", "a->b", float("nan"), 0.5, True).passed is False
    assert Criterion("activation_mse", "a->b", float("nan"), 0.5, False).passed is False


def test_users_register_their_own_criteria_with_a_direction():
    from equivtest.criteria import CRITERIA, criterion, register_criterion

    register_criterion("my_margin_test", higher_is_better=True, description="a user's score")
    try:
        c = criterion("my_margin_test", "a->b", 0.7).with_threshold(0.5)
        assert c.higher_is_better and c.passed
        with pytest.raises(EquivtestError, match="already registered"):
            register_criterion("my_margin_test", higher_is_better=False, description="again")
        with pytest.raises(EquivtestError, match="built-in"):
            register_criterion("agreement", higher_is_better=True, description="x", replace=True)
        with pytest.raises(EquivtestError, match="identifier"):
            register_criterion("my score", higher_is_better=True, description="x")
    finally:
        CRITERIA.pop("my_margin_test", None)
    with pytest.raises(EquivtestError, match="register_criterion"):
        criterion("my_margin_test", "a->b", 0.7)


def test_unknown_criterion_or_direction_is_an_error():
    with pytest.raises(EquivtestError, match="unknown criteria"):
        make_result().with_thresholds({"output_mse": 1.0})
    with pytest.raises(EquivtestError, match="no direction"):
        make_result().with_thresholds({"agreement": {"b->a": 0.5}})
