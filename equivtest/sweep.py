"""Where equivalence breaks: the ladder's verdict for every layer pair of two networks.

:func:`sweep` captures each network **once** (one forward pass per batch records every
layer asked for), then fits the ladder of maps (:func:`equivtest.verdict.decide`) for each
layer pair: all pairs (``mode="all"``), or layer against the same layer for two networks of
one architecture (``mode="diagonal"``, e.g. a network and its quantized, pruned or
fine-tuned copy). Each cell also gets linear CKA, and the stitched network's score at that
cell's layers (A up to ``layer_a``, the map, B after ``layer_b``). The cells are
independent fits and run through an executor (:mod:`equivtest.distributed`): in this
process by default, or on a distributed engine given as ``engine=``.

The answer, a frozen :class:`~equivtest.sweep_result.SweepResult`, names the first layer
whose verdict falls below a chosen rung (``up_to``) and by how much.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .errors import EquivtestError, LayerNotFoundError
from .sweep_result import Cell, DirectionFigures, SweepResult

MODES = ("auto", "all", "diagonal")
# The sweep's default ladder stops at the affine map: the nonlinear rung's kernel fits cost
# more than all rigid rungs together in every cell (see docs/guide/sweeps.md); pass
# rungs=equivtest.maps.LADDER for it.
SWEEP_LADDER = ("identity", "permutation", "orthogonal", "diagonal", "affine")
FEATURE_ENCODERS = ("feature_extractor", "feature_encoder")  # transformers audio models' convolutional front ends
CAPTURE_CHUNK = 256  # inputs per capture step (progress is reported between steps)

Progress = Callable[[str, int, int], None]  # progress(stage, done, total); stage "capture a", "capture b", "fit"

__all__ = ["MODES", "SWEEP_LADDER", "SweepResult", "blocks", "sweep"]


# ----------------------------------------------------------------------------- layers


def _model(net) -> Any:
    """The torch module behind a network: a module itself, a TorchNetwork's, an HFNetwork's."""
    for attr in ("module", "model"):
        inner = getattr(net, attr, None)
        if inner is not None and hasattr(inner, "named_modules"):
            return inner
    if hasattr(net, "named_modules"):
        return net
    raise EquivtestError(f"cannot find the module tree of a {type(net).__name__}; give a torch module, a "
                         "TorchNetwork or an HFNetwork")


def blocks(network) -> list[str]:
    """The default layer list of a sweep: every block of ``network``, input to output.

    Blocks are the children of a container (``nn.ModuleList``/``nn.Sequential``) whose
    children are two or more modules of one class: a transformer's layers
    (``encoder.layer.0``, ...), a ResNet's residual blocks. Containers inside a block are not
    searched. A network without such a container gives its named children (the children of
    an ``nn.Sequential``, or of the top module). ``network``: a torch module, a
    :class:`~equivtest.networks.TorchNetwork` or an :class:`~equivtest.adapters.hf.HFNetwork`.
    For a transformers model (an HFNetwork, or a module with a transformers ``config``) the
    convolutional feature encoder of an audio model (``feature_extractor``,
    ``feature_encoder``) is not searched: its outputs are channels x frames, not positions.
    """
    from torch import nn

    model = _model(network)
    skip = FEATURE_ENCODERS if (hasattr(network, "modality") or hasattr(model, "config")) else ()
    found: list[str] = []

    def visit(module, prefix: str) -> None:
        if prefix.rstrip(".").rsplit(".", 1)[-1] in skip:
            return
        children = list(module.named_children())
        classes = {type(child) for _, child in children}
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(children) >= 2 and len(classes) == 1:
            found.extend(f"{prefix}{name}" for name, _ in children)
            return
        for name, child in children:
            visit(child, f"{prefix}{name}.")

    visit(model, "")
    if not found:
        found = [name for name, _ in model.named_children()]
    if not found:
        raise EquivtestError(f"{type(model).__name__} has no child modules to sweep; name the layers "
                             "(layers_a=[...], layers_b=[...])")
    return found


def _layer_names(net, layers, side: str) -> list:
    """The layers of one side, checked to exist (close names listed when one does not)."""
    from .capture import resolve_layer
    from .layers import LayerSpec

    model = _model(net)
    layers = blocks(net) if layers is None else list(layers)
    if not layers:
        raise EquivtestError(f"the layer list of network {side} is empty; name at least one layer, or pass None "
                             f"for every block ({blocks(net)})")
    for layer in layers:
        path = LayerSpec.of(layer).path
        try:
            resolve_layer(model, path)
        except LayerNotFoundError as exc:
            raise LayerNotFoundError(f"network {side}: {exc}; equivtest.sweep.blocks(network) lists the default "
                                     "layers") from None
    paths = [LayerSpec.of(layer).path for layer in layers]
    if len(set(paths)) != len(paths):
        raise EquivtestError(f"the layer list of network {side} names a layer twice: {paths}")
    return layers


def _path(layer) -> str:
    from .layers import LayerSpec

    return LayerSpec.of(layer).path


def _pick_mode(mode: str, pair, layers_a: list, layers_b: list) -> tuple[str, list, list]:
    """The mode and the two layer lists it sweeps ("auto": diagonal when both lists name the same layers)."""
    if mode not in MODES:
        raise EquivtestError(f"mode must be one of {MODES}, got {mode!r}")
    names_a, names_b = [_path(x) for x in layers_a], [_path(x) for x in layers_b]
    if mode == "auto":
        mode = "diagonal" if names_a == names_b else "all"
    if mode == "all":
        return mode, layers_a, layers_b
    common = [x for x in layers_a if _path(x) in set(names_b)]
    if not common:
        raise EquivtestError(
            f"same-architecture mode (mode='diagonal') compares each layer with the layer of the same name, but "
            f"{pair.names[0]}'s layers {names_a[:8]} and {pair.names[1]}'s {names_b[:8]} have none in common; "
            "sweep every pair with mode='all', or name matching layers (layers_a=..., layers_b=...)")
    by_name = {_path(x): x for x in layers_b}
    return mode, common, [by_name[_path(x)] for x in common]


# ----------------------------------------------------------------------------- inputs


def _check_same_inputs(pair, inputs) -> None:
    """A sweep feeds both networks the same inputs: refuse pairs whose networks see different ones."""
    if pair.domain_map is not None:
        raise EquivtestError(
            f"pair {pair.name!r} has a domain_map: its networks take different inputs, so their layers cannot be "
            "swept against each other on one capture; sweep networks that take the same inputs, or compare one "
            "layer pair with equivtest.ladder_verdict(pair, inputs)")
    if pair.kind != "hf":
        return
    a, b = pair.side("a"), pair.side("b")
    if a.modality != b.modality:
        raise EquivtestError(f"pair {pair.name!r} pairs a {a.modality} network with a {b.modality} one; a sweep needs "
                             "two networks of one modality fed the same inputs")
    if callable(getattr(pair.pairing, "align", None)):
        raise EquivtestError(f"pair {pair.name!r} pairs positions through a position map (the networks' sequences "
                             "differ); a sweep needs two networks that see the same positions: use Positions(align='trim')")
    if a.modality == "text":
        for i, text in enumerate(inputs):
            ids_a, ids_b = a.encode(text, f"input {i} ({a.name})"), b.encode(text, f"input {i} ({b.name})")
            if ids_a.shape != ids_b.shape or not bool((ids_a == ids_b).all()):
                raise EquivtestError(
                    f"the two networks' tokenizers differ: input {i} ({text[:40]!r}) gives {len(ids_a)} tokens in "
                    f"{a.name} and {len(ids_b)} in {b.name}, not the same ids; a sweep feeds both networks the same "
                    "tokens, so give both HFNetworks the same tokenizer (tokenizer=...)")


def _as_pair(pair_or_networks):
    from .pairs import NetworkPair

    if isinstance(pair_or_networks, NetworkPair):
        return pair_or_networks
    if isinstance(pair_or_networks, (tuple, list)) and len(pair_or_networks) == 2:
        a, b = pair_or_networks
        if hasattr(a, "named_modules") and hasattr(b, "named_modules"):  # two torch modules: any layer will do
            return NetworkPair(a, b, layer_a=blocks(a)[0], layer_b=blocks(b)[0], name="sweep")
        return NetworkPair(a, b, name="sweep")
    raise TypeError(f"sweep needs a NetworkPair or two networks (a, b), got {type(pair_or_networks).__name__}")


# ----------------------------------------------------------------------------- capture


@dataclass(frozen=True)
class Captures:
    """One network's rows at every swept layer, from one capture: ``rows[path]``, ``groups[path]``."""

    rows: dict
    groups: dict
    outputs: Any  # the network's own outputs (torch: an array) or answers (transformers: a list)


def capture_side(net, inputs, layers: Sequence, progress: Callable[[int, int], None] | None = None) -> Captures:
    """``net``'s rows at every one of ``layers`` for ``inputs``: one forward pass per batch records them all.

    The inputs go in steps of :data:`CAPTURE_CHUNK` (``progress(done, total)`` after each)."""
    n = len(inputs)
    parts = []
    for start in range(0, n, CAPTURE_CHUNK):
        chunk = inputs[start : start + CAPTURE_CHUNK]
        parts.append((start, net.capture_layers(chunk, layers)))
        if progress is not None:
            progress(min(start + CAPTURE_CHUNK, n), n)
    paths = [_path(x) for x in layers]
    rows = {p: np.concatenate([r[p] for _, (r, _g, _o) in parts]) for p in paths}
    groups = {p: np.concatenate([g[p] + start for start, (_r, g, _o) in parts]) for p in paths}
    outs = [o for _, (_r, _g, o) in parts]
    outputs = np.concatenate(outs) if isinstance(outs[0], np.ndarray) else [x for o in outs for x in o]
    return Captures(rows, groups, outputs)


# ----------------------------------------------------------------------------- cells


@dataclass(frozen=True)
class Shared:
    """What every cell needs, sent to each worker once: the pair, the inputs, both captures, the options."""

    pair: Any
    inputs: Any
    captures: dict  # side -> Captures
    layers_a: tuple
    layers_b: tuple
    rungs: tuple  # the ladder's maps (templates: a map instance given keeps its parameters, the device set)
    thresholds: Any
    heldout: float
    seed: int
    stitched: bool
    null_repeats: int


def cell_pair(pair, layer_a, layer_b):
    """``pair`` read at ``layer_a`` of A and ``layer_b`` of B (the networks are shared, not copied)."""
    from .pairs import NetworkPair

    return NetworkPair(pair.side("a").at(layer_a), pair.side("b").at(layer_b), name=pair.name, names=pair.names,
                       task=pair.task, pairing=pair.pairing, output_a=pair.output_a, output_b=pair.output_b)


def _test_rows(shared: Shared, path_a: str, path_b: str):
    from .pairing import TestRows

    ca, cb = shared.captures["a"], shared.captures["b"]
    extra = {"raw": {"a": list(shared.inputs), "b": list(shared.inputs)}} if shared.pair.kind == "hf" else {}
    # the captures keep the networks' precision (float32: half the memory); a cell works on its
    # two layers in float64, as the fit's rows are read, so every figure is the float64 rows' figure
    as64 = lambda rows: np.asarray(rows, dtype=np.float64)  # noqa: E731
    return TestRows(shared.inputs, {"a": as64(ca.rows[path_a]), "b": as64(cb.rows[path_b])},
                    {"a": ca.groups[path_a], "b": cb.groups[path_b]}, {"a": ca.outputs, "b": cb.outputs}, extra)


# Positive controls kept across the cells this process runs: a cell's control depends only on its
# source layer's rows (and the rung, seed, split), so the cells of one row of the grid share A's
# and those of one column share B's (verdict._control). Per process, so any executor's workers
# each keep their own; a few floats per entry, cleared past _MAX_CONTROLS entries.
_CONTROLS: dict = {}
_MAX_CONTROLS = 10_000


def run_cell(shared: Shared, item: tuple[int, int]) -> dict:
    """One cell of the grid (``item = (i, j)``): the ladder's verdict and CKA, as a plain dict
    (:meth:`~equivtest.sweep_result.Cell.to_dict`). Module-level, so executors can ship it."""
    from .check import _stitch_callback
    from .measures.cka import LinearCKA
    from .verdict import decide, split_by_input

    i, j = item
    layer_a, layer_b = shared.layers_a[i], shared.layers_b[j]
    path_a, path_b = _path(layer_a), _path(layer_b)
    test = _test_rows(shared, path_a, path_b)
    a, b, groups = shared.pair.pairing.paired(test)
    callback = None
    if shared.stitched:
        held = split_by_input(groups, heldout=shared.heldout, seed=shared.seed)[1]
        callback = _where_needed(_stitch_callback(cell_pair(shared.pair, layer_a, layer_b), test, groups, held),
                                 {"a->b": b[held], "b->a": a[held]}, shared)
    if len(_CONTROLS) > _MAX_CONTROLS:
        _CONTROLS.clear()
    verdict = decide(a, b, groups, rungs=shared.rungs, thresholds=shared.thresholds, heldout=shared.heldout,
                     seed=shared.seed, null_repeats=shared.null_repeats, stitch=callback, controls=_CONTROLS)
    try:
        cka = LinearCKA().fit(a, b).score_
    except EquivtestError:  # a constant layer: CKA is undefined
        cka = None
    return _cell(i, j, path_a, path_b, verdict, cka).to_dict()


def _where_needed(stitch, targets: dict, shared: Shared):
    """``stitch`` run only where its score can matter: for a rung whose map meets the held-out error
    threshold (the stitched score then decides whether it passes), and for the last rung of the
    ladder (the figure a failing direction reports). A rung that misses the error threshold fails
    whatever the stitched network does, so its stitched score is NaN (not run). Run for every rung,
    the stitched forward passes were 60% of a MiniLM cell's time (docs/performance.md)."""
    from .maps import relative_error
    from .verdict import _thresholds

    names = tuple(t.name for t in shared.rungs)
    limits, last = _thresholds(shared.thresholds, names), names[-1]

    def needed(direction: str, rung: str, predicted: np.ndarray) -> float:
        if rung != last and not relative_error(predicted, targets[direction]) <= limits[rung].max_rel_error:
            return float("nan")
        return stitch(direction, rung, predicted)

    return needed


def _cell(i, j, path_a, path_b, verdict, cka) -> Cell:
    figures = []
    for d in verdict.directions:
        tried = [r for r in verdict.rows if r.direction == d.direction]
        row = next(r for r in tried if r.rung == d.rung) if d.rung else tried[-1]
        figures.append(DirectionFigures(d.direction, d.status, d.rung, row.heldout_rel_error, row.stitched,
                                        row.null_ratio))
    return Cell(i, j, path_a, path_b, verdict.kind, verdict.up_to, verdict.text, tuple(figures),
                None if cka is None or not math.isfinite(cka) else float(cka))


# ----------------------------------------------------------------------------- the sweep


def sweep(pair_or_networks, inputs, layers_a: Sequence | None = None, layers_b: Sequence | None = None, *,
          mode: str = "auto", rungs: Sequence | None = None, thresholds=None, up_to: str = "affine",
          heldout: float = 0.25, seed: int = 0, null_repeats: int = 1, stitched: bool = True, engine=None,
          progress: Progress | None = None, device: str | None = None) -> SweepResult:
    """The ladder's verdict for every layer pair of two networks (see the module docstring).

    ``pair_or_networks``: a :class:`~equivtest.NetworkPair` (its own layers are ignored; its task,
    pairing and names are used), or two torch modules or two HFNetworks. ``inputs``: inputs
    both networks take (an array for torch modules, texts or waveforms for transformers).
    ``layers_a``/``layers_b``: module paths (or LayerSpecs), default :func:`blocks`.
    ``mode``: ``"all"`` pairs, the ``"diagonal"`` (the same layer in both networks: the
    identity rung first, then the rest of the ladder), or ``"auto"`` (diagonal when both layer
    lists are the same). ``rungs`` (default :data:`SWEEP_LADDER`), ``thresholds``, ``heldout``,
    ``seed``, ``null_repeats`` go to :func:`~equivtest.verdict.decide`; ``up_to``: the rung the
    first failure is named against. ``stitched=False`` skips the stitched networks.
    ``engine``: where the cells run (:func:`equivtest.distributed.executor_for`).
    ``progress(stage, done, total)``: called as the captures and the fits advance.
    ``device``: a torch device ("cpu", "cuda") on which the rigid and affine maps of every
    cell compute (``None``: numpy; a map instance in ``rungs`` keeps its own device unless
    this one is given); checked before any capture.
    """
    from .distributed import executor_for
    from .maps import make_rung
    from .maps._xp import check_device
    from .verdict import _thresholds, split_by_input

    pair = _as_pair(pair_or_networks)
    check_device(device)  # before any capture
    templates = tuple(make_rung(r, device) for r in (SWEEP_LADDER if rungs is None else rungs))  # instances keep their parameters
    rungs = tuple(t.name for t in templates)
    if up_to not in rungs:
        raise EquivtestError(f"up_to={up_to!r} is not on the sweep's ladder {list(rungs)}")
    limits = _thresholds(thresholds, rungs)
    executor = executor_for(engine)
    inputs = _checked_inputs(pair, inputs)
    split_by_input(np.arange(len(inputs)), heldout=heldout, seed=seed)  # enough inputs: refused before any capture
    _check_same_inputs(pair, inputs)
    mode, layers_a, layers_b = _pick_mode(mode, pair, _layer_names(pair.side("a"), layers_a, pair.names[0]),
                                          _layer_names(pair.side("b"), layers_b, pair.names[1]))
    captures = {}
    for side, layers in (("a", layers_a), ("b", layers_b)):
        report = None if progress is None else (lambda done, total, side=side: progress(f"capture {side}", done, total))
        captures[side] = capture_side(pair.side(side), inputs, layers, report)
    shared = Shared(pair, inputs, captures, tuple(layers_a), tuple(layers_b), templates, thresholds, heldout, seed,
                    stitched, null_repeats)
    items = ([(k, k) for k in range(len(layers_a))] if mode == "diagonal"
             else [(i, j) for i in range(len(layers_a)) for j in range(len(layers_b))])
    report = None if progress is None else (lambda done, total: progress("fit", done, total))
    cells = executor.map(run_cell, shared, items, progress=report)
    return SweepResult(mode, tuple(pair.names), tuple(_path(x) for x in layers_a), tuple(_path(x) for x in layers_b),
                       rungs, up_to, tuple(Cell.from_dict(c) for c in cells), tuple(limits.items()))


def _checked_inputs(pair, inputs):
    if pair.kind == "hf":
        from .adapters.hf.pairing import _as_samples

        return _as_samples(inputs, "sweep inputs")
    from .networks import check_inputs

    x = check_inputs(inputs, "the sweep inputs")
    return x.cpu().numpy() if hasattr(x, "cpu") else x

