"""What every map of the ladder shares: input checks, parameters, the fitted check, saving.

A map is fitted on paired rows ``X`` (n, p) of one network and ``Y`` (n, q) of the other
(row i of both from the same input and position) and predicts ``Y`` from ``X``. It maps
one way; the other direction is a second map fitted with the roles swapped (a
least-squares map from B to A is not the inverse of the one from A to B unless the pair
is exactly invertible, so nothing is gained by pretending otherwise).
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import numpy as np

from .._validation import as_finite_float64, rows_fix
from ..errors import ActivationError, FitConfigError, NotFittedError, TransformFileError

FORMAT = "equivtest.map"
FORMAT_VERSION = 1
_FIX = "refit the map and save it again (the file must not be edited by hand)"


def check_rows(X, Y, groups=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X``, ``Y`` as finite float64 matrices with the same rows, ``groups`` as int codes.

    ``groups[i]`` names the input row i came from (a sentence, an image); ``None`` makes
    every row its own input.
    """
    x = as_finite_float64(X, "rows of the source network (X)", ndim=2, fix=rows_fix)
    y = as_finite_float64(Y, "rows of the target network (Y)", ndim=2, fix=rows_fix)
    if len(x) != len(y):
        raise ActivationError(
            f"X has {len(x)} rows and Y has {len(y)}; row i of both must come from the same input "
            "and position, so capture both networks on the same inputs"
        )
    return x, y, check_groups(groups, len(x))


def check_groups(groups, n: int) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups).reshape(-1)
    if len(g) != n:
        raise ActivationError(f"groups has {len(g)} entries for {n} rows; give the input index of every row")
    return np.unique(g, return_inverse=True)[1]


def relative_error(predicted: np.ndarray, target: np.ndarray) -> float:
    """Squared error over the target's variance around its own mean (1 - R^2, pooled over features)."""
    total = float(np.sum((target - target.mean(axis=0)) ** 2))
    err = float(np.sum((predicted - target) ** 2))
    if total == 0.0:
        return 0.0 if err == 0.0 else float("inf")
    return err / total


class Rung:
    """Base class of the maps (scikit-learn style: parameters in ``__init__``, ``fit``
    returns self, fitted attributes end in ``_``).

    The rigid and affine maps take ``device``: ``None`` (default) computes in numpy; a
    torch device name ("cpu", "cuda", "cuda:1") computes the same formulas in torch
    float64 on that device. Fitted attributes are numpy arrays either way, and ``device``
    is saved with the other parameters: a loaded map predicts on it, and where torch
    cannot use it here ``fit`` and ``predict`` raise :class:`~equivtest.errors.FitConfigError`
    naming the fix (set ``map.device = None``).
    """

    name: ClassVar[str] = ""
    same_width: ClassVar[bool] = False  # the map exists only between layers of one width
    fitted_arrays: ClassVar[tuple[str, ...]] = ()  # saved as npz arrays
    fitted_scalars: ClassVar[tuple[str, ...]] = ()  # saved in the JSON header

    # -- parameters -------------------------------------------------------------------
    def get_params(self) -> dict:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {k: _jsonable(getattr(self, k)) for k in names}

    def clone(self) -> "Rung":
        """An unfitted copy with the same parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # -- fitting and predicting -------------------------------------------------------
    def applicable(self, n_features_in: int, n_features_out: int) -> str | None:
        """``None`` when this map can exist between layers of these widths, else why not."""
        if self.same_width and n_features_in != n_features_out:
            return (f"the {self.name} map needs layers of one width, got {n_features_in} and {n_features_out} "
                    "features; use the affine or nonlinear map, or read layers of the same width")
        return None

    def fit(self, X, Y, groups=None) -> "Rung":
        x, y, g = check_rows(X, Y, groups)
        why = self.applicable(x.shape[1], y.shape[1])
        if why:
            raise FitConfigError(why)
        return self._fit_checked(x, y, g)

    def _fit_checked(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> "Rung":
        self._fit(x, y, groups)
        self.n_features_in_, self.n_features_out_ = x.shape[1], y.shape[1]
        return self

    def predict(self, X) -> np.ndarray:
        """Rows of the target network predicted from rows ``X`` of the source network (on the map's
        ``device``, which must be usable here, also for a map loaded from a file)."""
        self._check_fitted()
        self._ops()
        x = as_finite_float64(X, "rows of the source network (X)", ndim=2, fix=rows_fix)
        if x.shape[1] != self.n_features_in_:
            raise ActivationError(f"X has {x.shape[1]} features but the {self.name} map was fitted on "
                                  f"{self.n_features_in_}; read the same layer and neurons as at fit time")
        return self._predict(x)

    def diagnostics(self) -> dict:
        """Numbers about the fit that explain a failure (e.g. the ridge system's condition)."""
        self._check_fitted()
        return {}

    def _fit(self, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @classmethod
    def takes_device(cls) -> bool:
        """Whether this map has a ``device`` parameter (computes on a torch device when asked)."""
        return "device" in inspect.signature(cls.__init__).parameters

    def _ops(self):
        """The array operations of this map's ``device``: numpy for ``None``, else torch there (checked)."""
        from ._xp import ops_for

        return ops_for(getattr(self, "device", None),
                       f"use {type(self).__name__}(device=None) for the CPU's numpy path or device='cpu' (a map "
                       "loaded from a file keeps the device it was saved with: set map.device = None or 'cpu' "
                       "before predict)")

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X, Y, groups) or load_map(path)")

    # -- persistence ------------------------------------------------------------------
    def save(self, path):
        """Write the fitted map as npz arrays and a JSON header (checksummed, atomic, no pickle)."""
        from .. import __version__
        from ..persist import write_checked_npz

        self._check_fitted()
        header = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "equivtest_version": __version__,
            "rung": self.name, "params": self.get_params(),
            "scalars": {k: _jsonable(getattr(self, k)) for k in (*self.fitted_scalars, "n_features_in_", "n_features_out_")},
        }
        arrays = {k: np.asarray(getattr(self, k)) for k in self.fitted_arrays}
        return write_checked_npz(path, header, arrays, ("rung", "params", "scalars"))

    @classmethod
    def load(cls, path) -> "Rung":
        rung = load_map(path)
        if not isinstance(rung, cls):
            raise TransformFileError(f"{path} holds a {type(rung).__name__}, not a {cls.__name__}; use load_map(path)")
        return rung


_ARRAY_DTYPES = (np.float64, np.float32, np.int64, np.bool_)  # what a map's fitted arrays may be


def load_map(path) -> Rung:
    """Any saved map of the ladder (the diffusion-map rung reads a saved Transformation)."""
    from ..persist import FORMAT as TRANSFORMATION, FORMAT_VERSION as TRANSFORMATION_VERSION, read_checked_npz
    from . import RUNGS

    formats = {FORMAT: FORMAT_VERSION, TRANSFORMATION: TRANSFORMATION_VERSION}
    meta, contents = read_checked_npz(path, formats, "map", _FIX,
                                      lambda m: ("rung", "params", "scalars") if m["format"] == FORMAT else ("params", "epsilon"),
                                      lambda name: _ARRAY_DTYPES)
    if meta["format"] == TRANSFORMATION:
        from .diffusion import DiffusionMap

        return DiffusionMap.from_transformation_file(path)
    try:
        rung = RUNGS[meta["rung"]](**meta["params"])
        for k, v in meta["scalars"].items():
            setattr(rung, k, v)
        for k in rung.fitted_arrays:
            setattr(rung, k, contents[k])
    except (KeyError, TypeError, ValueError) as exc:
        raise TransformFileError(f"{path} has an incomplete header ({exc!r}); {_FIX}") from None
    return rung


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value
