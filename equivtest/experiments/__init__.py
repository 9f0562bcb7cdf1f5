"""The thesis's experiments as suites, defined once for ``pytest suites/`` and ``equivtest run``.

Each experiment module provides ``NAME``, ``TITLE``, ``pair()``, ``sampler()``,
``CONFIG``, ``test_inputs()`` and ``THRESHOLDS``.
"""

from __future__ import annotations

from types import ModuleType

from . import one_d

EXPERIMENTS: dict[str, ModuleType] = {one_d.NAME: one_d}


def get(name: str) -> ModuleType:
    try:
        return EXPERIMENTS[name]
    except KeyError:
        raise KeyError(f"no suite named {name!r}; available: {', '.join(EXPERIMENTS)}") from None
