"""Fixtures shared by the thesis's tests: the same session set-up as the core's tests."""

from tests.conftest import _torch_optimizer_modules_loaded  # noqa: F401  (autouse, see its docstring)
