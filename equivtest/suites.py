"""The suites ``equivtest run NAME`` knows: found through the entry-point group ``equivtest.suites``.

An installed distribution declares its suites in its ``pyproject.toml``::

    [project.entry-points."equivtest.suites"]
    1d = "equivtest_thesis.experiments.one_d"

The entry's name is the suite's name; its value names a module that defines the suite:
``NAME``, ``TITLE`` (a one-line string literal), and either a single fit (``pair()``,
``sampler()``, ``CONFIG``, ``test_inputs()``, ``THRESHOLDS``) or its own ``run()``
(see :func:`equivtest.runner.run_suite`). Listing the suites reads each module's
``TITLE`` from its source without importing it, so ``equivtest list`` and ``--help`` stay
fast (no torch, no datafold); :meth:`Suite.load` imports the module.

The thesis's suites (1d, vibration, merge, speech, text, speech-sentiment) come with the
distribution ``equivtest-thesis``, in the ``thesis/`` folder of a clone of equivtest.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType

GROUP = "equivtest.suites"
THESIS_DISTRIBUTION = "equivtest-thesis"
THESIS_SUITES = ("1d", "vibration", "merge", "speech", "text", "speech-sentiment")
INSTALL_HINT = (
    f"the thesis's suites ({', '.join(THESIS_SUITES)}) come with the package {THESIS_DISTRIBUTION}: "
    "from a clone of equivtest, run `pip install -e ./thesis`"
)


class SuiteNotFound(KeyError):
    """No installed suite has this name; the message says what is installed and how to get more."""


@dataclass(frozen=True)
class Suite:
    name: str
    module: str
    distribution: str | None = None

    @property
    def title(self) -> str:
        """The module's ``TITLE``, read from its source without importing it."""
        return _literal_title(self.module) or ""

    def load(self) -> ModuleType:
        module = importlib.import_module(self.module)
        declared = getattr(module, "NAME", None)
        if declared != self.name:
            raise ValueError(f"suite {self.name!r} names module {self.module!r}, whose NAME is {declared!r}")
        return module


def _literal_title(module: str) -> str | None:
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        with open(spec.origin, encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename=spec.origin)
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TITLE" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return value if isinstance(value, str) else None
    return None


def discover() -> dict[str, Suite]:
    """Every installed suite by name, in the order the entry points are found (first one wins)."""
    found: dict[str, Suite] = {}
    for ep in entry_points(group=GROUP):
        if ep.name not in found:
            dist = getattr(ep, "dist", None)
            distribution = re.sub(r"[-_.]+", "-", dist.name).lower() if dist is not None else None
            found[ep.name] = Suite(ep.name, ep.value.split(":")[0], distribution)
    return found


def get(name: str) -> Suite:
    """The installed suite ``name``; :class:`SuiteNotFound` names the installed ones and how to get the thesis's."""
    suites = discover()
    if name in suites:
        return suites[name]
    if not suites:
        raise SuiteNotFound(f"no suite named {name!r}: no suites are installed; {INSTALL_HINT}")
    message = f"no suite named {name!r}; available: {', '.join(suites)}"
    if not any(s.distribution == THESIS_DISTRIBUTION for s in suites.values()):
        message += f"; {INSTALL_HINT}"
    raise SuiteNotFound(message)
