"""A verdict on two networks' rows from the ladder of maps, with a null and a positive control.

For each direction (``a->b``: predict B's rows from A's, and ``b->a``) the rungs of the
ladder are tried rigid first; the direction is reached by the first rung whose map, fitted
on the training inputs, meets the thresholds on the held-out inputs:

- **held-out relative error**: squared error over the target's variance on the held-out
  rows (1 - R^2 pooled over features), at most ``max_rel_error``;
- **null ratio**: the same rung fitted *and* scored on randomly re-paired rows, its
  relative error divided by the real one, at least ``min_null_ratio``. Rows are re-paired
  (a random permutation of the training rows, another of the held-out rows), not whole
  inputs: inputs may hold different numbers of rows (sentences of different lengths), and
  a row-level shuffle breaks the pairing within an input as well. Fitting and scoring on
  re-paired rows makes the null meaningful for maps that fit nothing (identity);
- **stitched metric** (only when a ``stitch`` callback is given): the caller's score of
  the network stitched through the map on the held-out rows (e.g. agreement of the
  outputs), at least ``min_stitched``.

A **positive control** runs with every rung: the source network against itself, through
the same rung, split and thresholds. If it fails, the rung cannot recognise even an
identical network on this data, so its verdict is *undecidable*, with the reason
(fewer rows than features, intrinsic dimension above the eigenvectors, ...).

Train and held-out rows are split **by input** (``groups``: the input each row came
from), so the rows of one input are never on both sides; see :func:`split_by_input`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from .errors import EquivtestError, FitConfigError
from .maps import LADDER, Rung, make_rung, relative_error
from .maps._base import check_groups, check_rows
from .maps._xp import check_device

DIRECTIONS = ("a->b", "b->a")
LABELS = {"identity": "the identity", "permutation": "a permutation", "orthogonal": "an orthogonal map",
          "diagonal": "a diagonal (per-neuron affine) map", "affine": "an affine map", "nonlinear": "a nonlinear map",
          "diffusion": "the diffusion-map transformation"}
MIN_HELDOUT_INPUTS = 5
MIN_TRAIN_INPUTS = 5
ILL_CONDITIONED = 1e12


@dataclass(frozen=True)
class Thresholds:
    """What a rung's map must meet on held-out inputs (the defaults apply to every rung)."""

    max_rel_error: float = 1e-3
    min_null_ratio: float = 100.0
    min_stitched: float = 0.99


@dataclass(frozen=True)
class RungResult:
    """One rung in one direction. ``passed`` is False whenever ``decidable`` is."""

    direction: str
    rung: str
    heldout_rel_error: float | None
    null_rel_error: float | None
    null_ratio: float | None  # null / real: large when the pairing matters
    control_rel_error: float | None
    control_null_ratio: float | None
    stitched: float | None
    passed: bool
    decidable: bool
    reason: str
    details: dict = field(default_factory=dict)  # the map's diagnostics (penalty, ridge condition, ...)


@dataclass(frozen=True)
class DirectionResult:
    direction: str
    status: str  # "passed", "failed" or "undecidable"
    rung: str | None  # the most rigid rung that passed
    reason: str


@dataclass(frozen=True)
class Diagnostics:
    """What the data allows, and the fix where it does not (``hints``)."""

    inputs_train: int
    inputs_heldout: int
    rows_train: int
    rows_heldout: int
    width_a: int
    width_b: int
    ridge_condition: dict  # direction -> condition of X^T X + alpha I of the affine fit (if it ran)
    intrinsic_dim_a: int | None  # local PCA (equivtest.whitney), when the diffusion rung is on the ladder
    intrinsic_dim_b: int | None
    n_eigenvectors: int | None
    neighbourhood_rows: int | None  # M: rows per neighbourhood
    neighbourhood_train_rows: int | None  # rows with neighbourhoods the diffusion rung fits on (before its max_rows)
    hints: tuple[str, ...]


class NotEquivalentError(AssertionError):
    """Raised by :meth:`Verdict.assert_equivalent`; the message lists what failed."""


@dataclass(frozen=True)
class Verdict:
    kind: str  # "equivalent", "a_to_b", "b_to_a", "not_equivalent", "undecidable"
    text: str
    up_to: str | None  # for "equivalent": the less rigid of the two directions' rungs
    directions: tuple[DirectionResult, ...]
    rows: tuple[RungResult, ...]
    diagnostics: Diagnostics
    thresholds: dict  # rung -> Thresholds
    rungs: tuple[str, ...]
    heldout_rows: tuple[int, ...]

    def direction(self, direction: str) -> DirectionResult:
        return next(d for d in self.directions if d.direction == direction)

    def row(self, direction: str, rung: str) -> RungResult:
        for r in self.rows:
            if r.direction == direction and r.rung == rung:
                return r
        raise KeyError(f"no result for rung {rung!r} in direction {direction!r} (rungs after a passing one are skipped)")

    def to_dict(self) -> dict:
        out = asdict(self)
        out["thresholds"] = {k: asdict(v) for k, v in self.thresholds.items()}
        return _finite_json(out)

    def assert_equivalent(self, up_to: str = "affine") -> "Verdict":
        """Self if both directions are reached by ``up_to`` or a more rigid rung; else raise
        :class:`NotEquivalentError` listing what failed."""
        if up_to not in self.rungs:
            raise EquivtestError(f"up_to={up_to!r} is not on this verdict's ladder {list(self.rungs)}")
        limit = self.rungs.index(up_to)
        failed = [d for d in self.directions if d.rung is None or self.rungs.index(d.rung) > limit]
        if not failed:
            return self
        lines = [f"not equivalent up to {LABELS.get(up_to, up_to)}: {self.text}"]
        for d in failed:
            lines.append(f"  {d.direction}: {d.status}" + (f" at {d.rung}" if d.rung else "") + f" ({d.reason})")
            for r in self.rows:
                if r.direction == d.direction and self.rungs.index(r.rung) <= limit:
                    lines.append(f"    {r.rung}: {r.reason}")
        raise NotEquivalentError("\n".join(lines))


# ----------------------------------------------------------------------------- split


def split_by_input(groups, n_rows: int | None = None, heldout: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): a random ``heldout`` fraction of the *inputs* is held out.

    ``groups[i]`` is the input row i came from; ``None`` (with ``n_rows``) makes every row
    its own input. Both index arrays are sorted; the stitch callback of :func:`decide`
    receives predicted held-out rows in this order.
    """
    if groups is None and n_rows is None:
        raise EquivtestError("give groups (the input of every row) or n_rows")
    g = check_groups(groups, len(groups) if groups is not None else int(n_rows))
    n_inputs = int(g.max()) + 1
    if not 0.0 < heldout < 1.0:
        raise FitConfigError(f"heldout must be a fraction between 0 and 1, got {heldout}")
    n_out = int(round(heldout * n_inputs))
    if n_out < MIN_HELDOUT_INPUTS:
        raise FitConfigError(
            f"only {n_out} of {n_inputs} inputs would be held out; the verdict needs at least {MIN_HELDOUT_INPUTS} "
            f"held-out inputs: capture rows of more inputs (at least {math.ceil(MIN_HELDOUT_INPUTS / heldout)}) "
            "or raise heldout"
        )
    if n_inputs - n_out < MIN_TRAIN_INPUTS:
        raise FitConfigError(f"only {n_inputs - n_out} inputs would be left to fit on; the verdict needs at least "
                             f"{MIN_TRAIN_INPUTS}: capture rows of more inputs or lower heldout")
    out_inputs = np.random.default_rng(seed).choice(n_inputs, size=n_out, replace=False)
    is_out = np.isin(g, out_inputs)
    return np.flatnonzero(~is_out), np.flatnonzero(is_out)


# ----------------------------------------------------------------------------- decide


@dataclass
class _Data:
    """One direction's rows, split."""

    source: str
    target: str
    s_tr: np.ndarray
    t_tr: np.ndarray
    g_tr: np.ndarray
    s_te: np.ndarray
    t_te: np.ndarray
    local: tuple | None  # (source, target, groups, source's and target's neighbourhoods): the diffusion rung's training rows

    def training(self, template) -> tuple:
        """The training rows a rung fits on: the neighbourhood rows' for a rung that needs them."""
        if getattr(template, "needs_neighbourhoods", False):
            return self.local
        return self.s_tr, self.t_tr, self.g_tr, None, None


@dataclass(frozen=True)
class NeighbourhoodRows:
    """Rows with the rows of their neighbourhoods, for the diffusion-map rung.

    ``a`` (n, p) and ``b`` (n, q) are paired rows of the two networks, ``na`` (n, M, p) and
    ``nb`` (n, M, q) the rows of each one's neighbourhood, ``groups`` (n,) the input each
    row came from, numbered as the ``groups`` given to :func:`decide`. They need not be
    the rows :func:`decide` splits (a few positions per input suffice): the diffusion rung
    is fitted on those of them that come from training inputs and scored on the held-out
    rows like every other rung. :func:`equivtest.ladder_verdict` captures them through the
    pair's pairing.
    """

    a: np.ndarray
    b: np.ndarray
    na: np.ndarray
    nb: np.ndarray
    groups: np.ndarray


def decide(a, b, groups=None, *, rungs: Sequence["str | Rung"] = LADDER, thresholds: "Thresholds | dict | None" = None,
           heldout: float = 0.25, seed: int = 0, null_repeats: int = 1,
           stitch: Callable[[str, str, np.ndarray], float] | None = None,
           neighbourhoods: tuple | None = None, stop_at_pass: bool = True,
           intrinsic_dimension: bool | None = None, controls: "dict | None" = None,
           device: str | None = None) -> Verdict:
    """Verdict on rows ``a`` (n, p) and ``b`` (n, q) of two networks on the same inputs.

    ``groups[i]``: the input row i came from. ``rungs``: names or map instances (templates,
    cloned per fit), rigid first. ``thresholds``: one :class:`Thresholds` or a dict from
    rung name to one (others get the defaults). ``stitch(direction, rung, predicted)``:
    optional score of the stitched network on the held-out rows (``predicted`` in the order
    of ``split_by_input(groups, heldout=heldout, seed=seed)[1]``), higher is better.
    ``neighbourhoods``: needed by the diffusion rung, either ``(NA, NB)`` with shapes
    ``(n, M, p)``/``(n, M, q)`` (the neighbourhood rows of every row) or a
    :class:`NeighbourhoodRows` of other rows of the same inputs. ``stop_at_pass``: skip the
    rungs after the first that passes in a direction.
    ``intrinsic_dimension``: estimate it (local PCA; default: when the diffusion rung is on).
    ``controls``: a dict shared between calls on rows of the same source network (a layer
    sweep's cells), in which each positive control is kept by what it depends on (see
    :func:`_control`), so that it is fitted once, not once per call.
    ``device``: a torch device ("cpu", "cuda") for every rung that takes one (the rigid and
    affine maps; a template keeps its own device when this is ``None``); the nonlinear and
    diffusion rungs compute in numpy whatever it is. Checked before any fit.
    """
    x, y, g = check_rows(a, b, groups)
    check_device(device)  # before any capture or fit
    templates = [make_rung(r, device) for r in rungs]
    names = tuple(t.name for t in templates)
    if len(set(names)) != len(names):
        raise EquivtestError(f"each rung may appear once on the ladder, got {list(names)}")
    limits = _thresholds(thresholds, names)
    reasons = [t.applicable(x.shape[1], y.shape[1]) for t in templates]
    if all(reasons):
        raise FitConfigError(f"no rung on the ladder {list(names)} can map between these layers: {reasons[0]}")
    train, test = split_by_input(g, heldout=heldout, seed=seed)
    local = _neighbourhood_training(neighbourhoods, x, y, g, groups, train)
    swapped = local and (local[1], local[0], local[2], local[4], local[3])
    data = {
        "a->b": _Data("A", "B", x[train], y[train], g[train], x[test], y[test], local),
        "b->a": _Data("B", "A", y[train], x[train], g[train], y[test], x[test], swapped),
    }
    diffusion = next((t for t in templates if t.name == "diffusion"), None)
    if intrinsic_dimension is None:
        intrinsic_dimension = diffusion is not None
    dims = {}
    if intrinsic_dimension:
        from .whitney import estimate_intrinsic_dimension

        dims = {"A": estimate_intrinsic_dimension(x[train], max_points=200),
                "B": estimate_intrinsic_dimension(y[train], max_points=200)}
    context = {"dims": dims, "neighbourhood_rows": local[3].shape[1] if local else None,
               "neighbourhood_train_rows": len(local[0]) if local else None,
               "n_eigenvectors": getattr(diffusion, "n_eigenvectors", None)}
    rng = np.random.default_rng(seed + 1)
    rows, directions, conditions = [], [], {}
    for direction, d in data.items():
        found = []
        for template in templates:
            row = _evaluate(template, direction, d, limits[template.name], rng, null_repeats, stitch, context,
                            seed, controls)
            found.append(row)
            if "ridge_condition" in row.details and direction not in conditions:
                conditions[direction] = row.details["ridge_condition"]
            if row.passed and stop_at_pass:
                break
        rows += found
        directions.append(_direction_result(direction, found))
    diagnostics = _diagnostics(x, y, g, train, test, conditions, context)
    kind, text, up_to = _overall(directions, names)
    return Verdict(kind, text, up_to, tuple(directions), tuple(rows), diagnostics, limits, names,
                   tuple(int(i) for i in test))


def _thresholds(thresholds, names) -> dict:
    if thresholds is None or isinstance(thresholds, Thresholds):
        return {n: thresholds or Thresholds() for n in names}
    unknown = set(thresholds) - set(names)
    if unknown:
        raise EquivtestError(f"thresholds given for rungs {sorted(unknown)} that are not on the ladder {list(names)}")
    return {n: thresholds.get(n, Thresholds()) for n in names}


def _neighbourhood_training(neighbourhoods, x, y, g, groups, train):
    """The diffusion rung's training rows ``(A, B, input codes, NA, NB)``, or None."""
    if neighbourhoods is None:
        return None
    from ._validation import as_finite_float64

    if isinstance(neighbourhoods, NeighbourhoodRows):
        ra, rb, _ = check_rows(neighbourhoods.a, neighbourhoods.b)
        codes = _codes(np.asarray(neighbourhoods.groups).reshape(-1), groups, len(x), len(ra))
        index = np.flatnonzero(np.isin(codes, np.unique(g[train])))
        if not len(index):
            raise FitConfigError("none of the neighbourhood rows comes from a training input; capture neighbourhood "
                                 "rows of the inputs the verdict fits on (see split_by_input)")
        rows, nbs, codes = (ra[index], rb[index]), (neighbourhoods.na, neighbourhoods.nb), codes[index]
    else:
        if len(neighbourhoods) != 2 or any(len(n) != len(x) for n in neighbourhoods):
            raise FitConfigError(f"neighbourhoods=(NA, NB) must hold one neighbourhood for each of the {len(x)} rows, "
                                 f"shapes ({len(x)}, M, p) and ({len(x)}, M, q); or give NeighbourhoodRows")
        rows, nbs, codes, index = (x[train], y[train]), neighbourhoods, g[train], train
    na = as_finite_float64(np.asarray(nbs[0])[index], "neighbourhood rows of network A", ndim=3)
    nbb = as_finite_float64(np.asarray(nbs[1])[index], "neighbourhood rows of network B", ndim=3)
    for label, n, r in (("A", na, rows[0]), ("B", nbb, rows[1])):
        if n.shape[0] != r.shape[0] or n.shape[2] != r.shape[1]:
            raise FitConfigError(f"neighbourhood rows of network {label} have shape {n.shape} for rows of shape "
                                 f"{r.shape}; expected ({r.shape[0]}, M, {r.shape[1]}): one neighbourhood per row")
    return rows[0], rows[1], codes, na, nbb


def _codes(found, groups, n_rows: int, n_found: int) -> np.ndarray:
    """``found`` (inputs as ``groups`` numbers them) as the codes :func:`check_groups` gave ``groups``."""
    if len(found) != n_found:
        raise FitConfigError(f"the neighbourhood rows have {len(found)} groups for {n_found} rows; give the input "
                             "of every row")
    known = np.arange(n_rows) if groups is None else np.unique(np.asarray(groups).reshape(-1))
    codes = np.clip(np.searchsorted(known, found), 0, len(known) - 1)
    if not np.array_equal(known[codes], found):
        raise FitConfigError("some neighbourhood rows come from inputs that have no rows in groups; number their "
                             "inputs as the groups of the rows")
    return codes


def _fit_score(template: Rung, s_tr, t_tr, g_tr, s_te, t_te, n_s, n_t) -> tuple[float, np.ndarray, Rung]:
    rung = template.clone()
    if getattr(rung, "needs_neighbourhoods", False):
        rung.fit(s_tr, t_tr, g_tr, neighbourhoods=(n_s, n_t))
    else:
        rung.fit(s_tr, t_tr, g_tr)
    predicted = rung.predict(s_te)
    return relative_error(predicted, t_te), predicted, rung


def _null(template, s_tr, t_tr, g_tr, s_te, t_te, n_s, n_t, rng, repeats) -> float:
    """The smallest relative error of the rung fitted and scored on re-paired rows (most conservative)."""
    errors = []
    for _ in range(max(1, repeats)):
        p_tr, p_te = rng.permutation(len(t_tr)), rng.permutation(len(t_te))
        errors.append(_fit_score(template, s_tr, t_tr[p_tr], g_tr, s_te, t_te[p_te], n_s,
                                 None if n_t is None else n_t[p_tr])[0])
    return min(errors)


def _ratio(null: float, real: float) -> float:
    return float("inf") if real == 0 else null / real


def _control(template, direction: str, s_tr, g_tr, s_te, n_s, rng, repeats, seed: int, cache) -> tuple[float, float]:
    """The positive control: ``template`` fitted from the source to itself, ``(relative error, null ratio)``.

    What it depends on is the rung, the direction, the source's rows (training and held-out,
    their inputs, their neighbourhoods), ``seed`` and ``repeats``; its null draws from its
    own generator, seeded by ``seed``, the direction and the rung, so that the result is the
    same in every call on those rows, whichever call fits it first. The draws it used to
    take from ``rng`` (the pair's stream) are still taken, so the pair's null is unchanged.
    ``cache`` (a dict, or None) keeps the results by a digest of all of that."""
    from .pairing import content_digest

    for _ in range(max(1, repeats)):  # keep the pair's stream where it was
        rng.permutation(len(s_tr)), rng.permutation(len(s_te))
    key = None
    if cache is not None:
        key = content_digest((repr(template), direction, seed, repeats, s_tr, g_tr, s_te, n_s))
        if key in cache:
            return cache[key]
    own = np.random.default_rng([seed + 1, DIRECTIONS.index(direction), zlib.crc32(template.name.encode())])
    c_err = _fit_score(template, s_tr, s_tr, g_tr, s_te, s_te, n_s, n_s)[0]
    c_null = _null(template, s_tr, s_tr, g_tr, s_te, s_te, n_s, n_s, own, repeats)
    found = (c_err, _ratio(c_null, c_err))
    if cache is not None:
        cache[key] = found
    return found


def _evaluate(template, direction, d: _Data, limit: Thresholds, rng, repeats, stitch, context,
              seed: int, controls: "dict | None") -> RungResult:
    name = template.name
    why = template.applicable(d.s_tr.shape[1], d.t_tr.shape[1])
    if why:  # the map cannot exist between these widths: decided, not passed
        return RungResult(direction, name, None, None, None, None, None, None, False, True, why)
    training = d.training(template)
    if training is None:
        return RungResult(direction, name, None, None, None, None, None, None, False, False,
                          "the diffusion-map rung needs neighbourhood rows: pass neighbourhoods=(NA, NB) or "
                          "NeighbourhoodRows (ladder_verdict captures them through the pair's pairing)")
    s_tr, t_tr, g_tr, n_s, n_t = training
    # positive control: the source against itself, same rung, split and thresholds
    c_err, c_ratio = _control(template, direction, s_tr, g_tr, d.s_te, n_s, rng, repeats, seed, controls)
    err, predicted, fitted = _fit_score(template, s_tr, t_tr, g_tr, d.s_te, d.t_te, n_s, n_t)
    null = _null(template, s_tr, t_tr, g_tr, d.s_te, d.t_te, n_s, n_t, rng, repeats)
    ratio = _ratio(null, err)
    details = fitted.diagnostics()
    stitched = None if stitch is None else float(stitch(direction, name, predicted))
    if c_err > limit.max_rel_error or c_ratio < limit.min_null_ratio:
        reason = _control_reason(name, d, c_err, c_ratio, limit, context)
        return RungResult(direction, name, err, null, ratio, c_err, c_ratio, stitched, False, False, reason, details)
    misses = []
    if not err <= limit.max_rel_error:
        misses.append(f"held-out relative error {err:.3g} > {limit.max_rel_error:g}")
    if not ratio >= limit.min_null_ratio:
        misses.append(f"null ratio {ratio:.3g} < {limit.min_null_ratio:g} (re-paired rows reach {null:.3g})")
    if stitched is not None and not stitched >= limit.min_stitched:
        misses.append(f"stitched metric {stitched:.4g} < {limit.min_stitched:g}")
    reason = "; ".join(misses) or (f"held-out relative error {err:.3g}, null ratio {ratio:.3g}"
                                   + (f", stitched {stitched:.4g}" if stitched is not None else ""))
    return RungResult(direction, name, err, null, ratio, c_err, c_ratio, stitched, not misses, True, reason, details)


def _control_reason(name, d: _Data, c_err, c_ratio, limit, context) -> str:
    head = (f"undecidable: the positive control ({d.source} against itself through the {name} map) fails "
            f"(held-out relative error {c_err:.3g}, null ratio {c_ratio:.3g}; limits {limit.max_rel_error:g}, "
            f"{limit.min_null_ratio:g})")
    n, p = d.s_tr.shape
    if name in ("affine", "nonlinear") and n < p:
        return (f"{head}: fewer training rows ({n}) than features of {d.source} ({p}), so the affine map is "
                f"underdetermined; capture rows of more inputs (at least {p} training rows) or read fewer neurons")
    dim = context["dims"].get(d.source)
    if name == "diffusion" and dim is not None:
        causes = _diffusion_causes(d.source, dim, context["n_eigenvectors"], context["neighbourhood_rows"])
        if causes:
            return f"{head}: " + "; ".join(causes)
    return f"{head}; give more inputs, or use a more rigid rung"


def _diffusion_causes(label: str, dim: int, k: int | None, m: int | None) -> list[str]:
    """Why the diffusion rung cannot recognise even the same network here, each with its fix."""
    causes = []
    if k is not None and dim >= k:
        causes.append(f"the estimated intrinsic dimension of {label}'s rows ({dim}, local PCA) is not below the {k} "
                      f"eigenvectors (the constant one included), so {k - 1} diffusion coordinates cannot carry them: "
                      f"raise n_eigenvectors to at least {dim + 1}, or use a rigid rung")
    if m is not None and m <= dim:
        causes.append(f"neighbourhoods of {m} rows cannot span the {dim} dimensions of {label}'s rows (the "
                      f"neighbourhood covariances are singular): capture at least {2 * dim + 1} neighbourhood rows")
    return causes


def _direction_result(direction, rows) -> DirectionResult:
    passed = next((r for r in rows if r.passed), None)
    if passed is not None:
        return DirectionResult(direction, "passed", passed.rung, passed.reason)
    undecided = [r for r in rows if not r.decidable]
    if undecided:
        return DirectionResult(direction, "undecidable", None,
                               "; ".join(f"{r.rung}: {r.reason}" for r in undecided))
    return DirectionResult(direction, "failed", None, "no rung meets the thresholds on held-out inputs")


def _overall(directions, names) -> tuple[str, str, str | None]:
    ab, ba = directions
    if ab.status == ba.status == "passed":
        up_to = max((ab.rung, ba.rung), key=names.index)
        return "equivalent", f"equivalent up to {LABELS.get(up_to, up_to)}", up_to
    if ab.status == ba.status == "failed":
        return "not_equivalent", "not equivalent: no rung maps either network onto the other", None
    for one, other, kind, text in ((ab, ba, "a_to_b", "B is reachable from A but A not from B"),
                                   (ba, ab, "b_to_a", "A is reachable from B but B not from A")):
        if one.status == "passed" and other.status == "failed":
            return kind, f"{text} ({one.direction} by {LABELS.get(one.rung, one.rung)})", None
    reasons = "; ".join(f"{d.direction}: {d.reason}" for d in directions if d.status == "undecidable")
    return "undecidable", f"undecidable: {reasons}", None


def _diagnostics(x, y, g, train, test, conditions, context) -> Diagnostics:
    hints = []
    n = len(train)
    for label, width in (("A", x.shape[1]), ("B", y.shape[1])):
        if n < width:
            hints.append(f"fewer training rows ({n}) than features of {label} ({width}): maps from {label} wider than "
                         f"diagonal are underdetermined; capture rows of more inputs or read fewer neurons")
    for direction, cond in conditions.items():
        if cond > ILL_CONDITIONED:
            hints.append(f"{direction}: the ridge system is ill-conditioned (condition {cond:.2g}); the source's "
                         "features are nearly collinear, read fewer neurons or their principal components")
    k, m = context["n_eigenvectors"], context["neighbourhood_rows"]
    for label, dim in context["dims"].items():
        hints += [f"diffusion rung: {cause}" for cause in _diffusion_causes(label, dim, k, m)]
    dims = context["dims"]
    return Diagnostics(len(np.unique(g[train])), len(np.unique(g[test])), n, len(test), x.shape[1], y.shape[1],
                       dict(conditions), dims.get("A"), dims.get("B"), k, m, context["neighbourhood_train_rows"],
                       tuple(hints))


def _finite_json(value):
    """JSON has no infinity or NaN: they become the strings "inf", "-inf", "nan"."""
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else str(v)
    if isinstance(value, np.integer):
        return int(value)
    return value
