"""equivtest: test whether two neural networks are equivalent.

The public API. Names are imported on first use, so that loading the pytest plugin
(which imports this package) does not pull in torch and datafold for every test run.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "LayerSpec": "capture",
    "capture": "capture",
    "capture_neighbourhoods": "capture",
    "Criterion": "criteria",
    "EquivalenceFailure": "criteria",
    "EquivalenceResult": "criteria",
    "Evaluation": "criteria",
    "EvaluationArrays": "criteria",
    "register_criterion": "criteria",
    "FitConfig": "config",
    "FittedPair": "engine",
    "fit": "engine",
    "fit_pair": "engine",
    "fit_slice_lengths": "engine",
    "ActivationError": "errors",
    "EquivtestError": "errors",
    "FitConfigError": "errors",
    "LayerNotFoundError": "errors",
    "NotFittedError": "errors",
    "TransformFileError": "errors",
    "NetworkPair": "pairs",
    "ladder_verdict": "check",
    "Verdict": "verdict",
    "Thresholds": "verdict",
    "NotEquivalentError": "verdict",
    "NeighbourhoodRows": "verdict",
    "Network": "networks",
    "TorchNetwork": "networks",
    "Samples": "pairing",
    "pair": "plugin",
    "DatasetPoints": "sampling",
    "GaussianNeighbourhood": "sampling",
    "GridPoints": "sampling",
    "Sampler": "sampling",
    "SampleSet": "sampling",
    "StitchedNetwork": "stitch",
    "SweepResult": "sweep_result",
    "Transformation": "transform",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'equivtest' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
