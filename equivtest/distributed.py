"""Where independent pieces of work run: in this process, or on a distributed engine.

A sweep's cells (one ladder fit per layer pair) are independent. They run through an
*executor*, an object with one method::

    executor.map(fn, shared, items, progress=None) -> list

``fn(shared, item)`` is called once per item; ``shared`` holds what every call needs (the
captured rows of both networks, the pair) and must reach each worker once, not once per
item. ``progress(done, total)``, when given, is called as items finish. The results come
back in the order of ``items``.

:func:`executor_for` turns what a user passes as ``engine=`` into an executor: ``None``
runs in this process.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from .errors import EquivtestError


class InProcess:
    """Every item in this process, one after the other."""

    name = "in-process"

    def map(self, fn: Callable[[Any, Any], Any], shared: Any, items: Sequence, progress=None) -> list:
        out = []
        for i, item in enumerate(items):
            out.append(fn(shared, item))
            if progress is not None:
                progress(i + 1, len(items))
        return out


def executor_for(engine: Any = None):
    """The executor for ``engine``: ``None`` (this process) or an object that already has ``map``."""
    if engine is None:
        return InProcess()
    if callable(getattr(engine, "map", None)) and getattr(engine, "name", None):
        return engine
    raise EquivtestError(f"engine must be None (run in this process), got {type(engine).__name__}")
