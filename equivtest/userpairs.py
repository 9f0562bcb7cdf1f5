"""A user's own pair from the command line: ``equivtest run FILE::NAME`` or ``module:function``.

The pair is declared once, for pytest and the CLI alike, with ``@equivtest.pair`` and the
fit's ``data`` and ``test_inputs`` (see :func:`equivtest.plugin.pair`). The run fits it,
evaluates it and writes the same record and HTML report as a suite.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import EquivtestError


@dataclass(frozen=True)
class PairSpec:
    """What ``@equivtest.pair`` records for the command line."""

    function: Callable
    name: str
    data: Any = None
    test_inputs: Any = None
    config: Any = None
    thresholds: Any = None
    ladder_inputs: Any = None

    def value(self, field: str):
        v = getattr(self, field)
        return v() if callable(v) and not _is_data(v) else v


def _is_data(value) -> bool:
    """A sampler is callable-free; a dataclass instance or array is data, a function is a maker."""
    return not (inspect.isfunction(value) or inspect.ismethod(value) or inspect.isbuiltin(value))


def is_pair_target(target: str) -> bool:
    """Whether ``target`` names a user's pair rather than a suite."""
    return "::" in target or target.endswith(".py") or (":" in target and not target.startswith(":"))


def load_spec(target: str, needs: tuple = ("data", "test_inputs")) -> PairSpec:
    """The :class:`PairSpec` that ``FILE.py::NAME`` or ``package.module:NAME`` names; ``needs``: the
    fields the command needs declared (a sweep needs only inputs, see :func:`sweep_inputs`)."""
    if "::" in target:
        path, _, name = target.partition("::")
        module = _import_file(Path(path))
    elif ":" in target and not target.endswith(".py"):
        module_name, _, name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EquivtestError(f"cannot import module {module_name!r} ({exc}); give FILE.py::NAME or an importable "
                                 "module:NAME") from None
    else:
        raise EquivtestError(f"{target!r} names no pair; give FILE.py::NAME (e.g. tests/test_mine.py::mlp_pair) "
                             "or module:NAME")
    if not name:
        raise EquivtestError(f"{target!r} names a file but no pair; add ::NAME, the @equivtest.pair function's name")
    found = getattr(module, name, None)
    if found is None:
        declared = sorted(k for k, v in vars(module).items() if hasattr(v, "__equivtest__"))
        raise EquivtestError(f"{target!r}: no {name!r} in {module.__name__}"
                             + (f"; its pairs: {', '.join(declared)}" if declared else "; it declares no @equivtest.pair"))
    spec = getattr(found, "__equivtest__", None)
    if spec is None:
        raise EquivtestError(f"{target!r} is not declared with @equivtest.pair; declare it as "
                             "@equivtest.pair(data=..., test_inputs=...) so the command line knows what to fit it on")
    missing = [f for f in needs if getattr(spec, f) is None]
    if missing:
        raise EquivtestError(f"pair {spec.name!r} has no {' and no '.join(missing)} for the command line; declare it "
                             "@equivtest.pair(data=SAMPLER_OR_SAMPLES, test_inputs=TEST_INPUTS) (values or functions)")
    params = [p for p in inspect.signature(spec.function).parameters.values()
              if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if params:
        raise EquivtestError(f"pair {spec.name!r} asks for fixtures ({', '.join(p.name for p in params)}); the command "
                             "line runs pairs whose function takes no arguments")
    return spec


def sweep_inputs(spec: PairSpec):
    """The inputs ``equivtest sweep`` runs a declared pair on: its ``ladder_inputs``, else its ``test_inputs``."""
    for field in ("ladder_inputs", "test_inputs"):
        if getattr(spec, field) is not None:
            return spec.value(field)
    raise EquivtestError(f"pair {spec.name!r} declares no inputs for a sweep; declare it "
                         "@equivtest.pair(ladder_inputs=INPUTS) (or test_inputs=INPUTS): many inputs both networks take")


def _import_file(path: Path):
    if not path.is_file():
        raise EquivtestError(f"no file {str(path)!r}; give the path of the Python file that declares the pair")
    name = f"_equivtest_user_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # the file's own imports (a conftest's neighbours)
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def run_pair(spec: PairSpec, *, report_dir=None, stage=None, null_shuffles: int = 0):
    """Fit, evaluate and (with ``report_dir``) record the pair; returns a suite-shaped outcome."""
    from .engine import FitConfig, fit
    from .outcome import ExperimentOutcome
    from .pairs import NetworkPair
    from .record import write_run

    pair = spec.function()
    if not isinstance(pair, NetworkPair):
        raise EquivtestError(f"pair {spec.name!r} returned {type(pair).__name__}; return equivtest.NetworkPair(...)")
    fitted = fit(pair, spec.value("data"), spec.value("config") or FitConfig(), stage=stage)
    result = fitted.evaluate(spec.value("test_inputs"), thresholds=spec.value("thresholds"), stage=stage,
                             null_shuffles=null_shuffles)
    tables, verdicts = [], []
    if spec.ladder_inputs is not None:  # the ladder's verdict beside the transformation, in every report
        from .runner import ladder_beside

        result, table, verdict = ladder_beside(pair, spec.value("ladder_inputs"), result, stage=stage)
        tables, verdicts = [table], [verdict]
    records = [write_run(fitted, result, report_dir, tables=tables)] if report_dir is not None else []
    return ExperimentOutcome([result], tables, records=records, timings=dict(fitted.timings), verdicts=verdicts)
