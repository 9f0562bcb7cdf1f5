"""The thesis's suites as installed entry points (group ``equivtest.suites``, thesis/pyproject.toml)."""

from __future__ import annotations

import importlib

import pytest

from equivtest import suites

THESIS = ("1d", "vibration", "merge", "speech", "text", "speech-sentiment")


def test_the_six_suites_are_found_with_their_titles():
    found = suites.discover()
    assert set(THESIS) <= set(found), found
    for name in THESIS:
        assert found[name].distribution == suites.THESIS_DISTRIBUTION
        assert found[name].module.startswith("equivtest_thesis.experiments.")
        assert found[name].title  # read from the module's TITLE without importing it


@pytest.mark.parametrize("name", THESIS)
def test_each_entry_names_a_module_that_defines_the_suite(name):
    suite = suites.get(name)
    module = importlib.import_module(suite.module)
    assert module.NAME == name and module.TITLE == suite.title
    assert hasattr(module, "run") or all(
        hasattr(module, attr) for attr in ("pair", "sampler", "CONFIG", "test_inputs", "THRESHOLDS")
    )
