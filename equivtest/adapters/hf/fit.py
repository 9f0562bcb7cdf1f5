"""Deprecated names of the first transformers front end, kept for one release.

Transformers pairs now go through the one path every pair takes:
``NetworkPair(HFNetwork(...), HFNetwork(...), pairing=Positions(...))``,
:func:`equivtest.fit` and ``FittedPair.evaluate``.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

from ...engine import FitConfig, FittedPair, fit
from ...networks import TASKS as _ALL_TASKS
from ...pairs import NetworkPair
from .pairing import TARGET_INPUTS, Positions

TASKS = _ALL_TASKS[1:]
HFFitted = FittedPair


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"{old} is deprecated and goes in the next release; use {new}", DeprecationWarning, stacklevel=3)


def HFSampling(*args, **kwargs) -> Positions:  # noqa: N802 - the old class name
    """Deprecated: :class:`~equivtest.adapters.hf.Positions`."""
    _deprecated("HFSampling", "equivtest.adapters.hf.Positions")
    return Positions(*args, **kwargs)


def HFPair(a, b, name: str = "pair", names=("a", "b"), domain_map=None, task: str = "classification",  # noqa: N802
           metadata: dict | None = None) -> NetworkPair:
    """Deprecated: :class:`equivtest.NetworkPair` of two HFNetworks."""
    _deprecated("HFPair", "equivtest.NetworkPair(HFNetwork(...), HFNetwork(...), pairing=Positions(...))")
    return NetworkPair(a, b, name=name, names=names, domain_map=domain_map, task=task, metadata=dict(metadata or {}))


def fit_hf(pair: NetworkPair, samples, config: FitConfig | None = None, sampling: Positions | None = None,
           *, stage=None) -> FittedPair:
    """Deprecated: ``equivtest.fit(NetworkPair(..., pairing=sampling), samples, config)``."""
    _deprecated("fit_hf", "equivtest.fit")
    if sampling is not None:
        pair = replace(pair, pairing=sampling)
    return fit(pair, samples, config, stage=stage)


__all__ = ["TARGET_INPUTS", "TASKS", "HFFitted", "HFPair", "HFSampling", "fit_hf"]
