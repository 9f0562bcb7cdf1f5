"""Saving and loading a fitted Transformation: npz arrays plus a JSON header, no pickle.

One ``.npz`` file holds the arrays that determine the fit and a JSON header (stored
as bytes under ``__meta__``) with the format version, the parameters and a SHA-256
of every array. Loading checks all of it, then rebuilds the interpolants from the
arrays (deterministic), so a truncated, corrupted or hand-edited file is refused
with a clear error instead of giving silently different predictions.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from ._io import atomic_write_bytes
from .errors import TransformFileError

FORMAT = "equivtest.transformation"
FORMAT_VERSION = 1
_ARRAYS = ("activations", "coordinates", "eigenvalues")


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def _header_digest(meta: dict) -> str:
    """Checksum of the header fields that change predictions (arrays have their own)."""
    fields = {"params": meta["params"], "epsilon": meta["epsilon"]}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def save_transformation(transformation, path) -> Path:
    from . import __version__

    arrays = {}
    for side in ("a", "b"):
        fit = getattr(transformation, f"side_{side}_")
        for name in _ARRAYS:
            arrays[f"{name}_{side}"] = np.asarray(getattr(fit, name), dtype=np.float64)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "equivtest_version": __version__,
        "params": transformation.get_params(),
        "epsilon": {"a": transformation.side_a_.epsilon, "b": transformation.side_b_.epsilon},
        "sha256": {k: _digest(v) for k, v in arrays.items()},
    }
    meta["header_sha256"] = _header_digest(json.loads(json.dumps(meta)))
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def load_transformation(path):
    from .transform import SideFit, Transformation

    path = Path(path)
    fix = "refit the transformation and save it again (the file must not be edited by hand)"
    if not path.exists():
        raise TransformFileError(f"no saved transformation at {path}")
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            contents = {k: npz[k] for k in npz.files}
    except Exception as exc:  # zipfile, zlib, struct, tokenize...: every one means "unreadable"
        raise TransformFileError(f"{path} is not a readable transformation file ({exc!r}); {fix}") from None
    try:
        meta = json.loads(bytes(contents.pop("__meta__")).decode())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TransformFileError(f"{path} has no valid header ({exc}); {fix}") from None
    if not isinstance(meta, dict):
        raise TransformFileError(f"{path} has no valid header (not a JSON object); {fix}")
    if meta.get("format") != FORMAT:
        raise TransformFileError(f"{path} is not an equivtest transformation (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise TransformFileError(
            f"{path} has format version {meta.get('format_version')!r}; this equivtest reads version "
            f"{FORMAT_VERSION}. {fix}"
        )
    expected = meta.get("sha256", {})
    if set(expected) != set(contents):
        raise TransformFileError(
            f"{path} holds arrays {sorted(contents)} but its header lists {sorted(expected)}; {fix}"
        )
    for name, array in contents.items():
        if _digest(array) != expected[name]:
            raise TransformFileError(f"array {name!r} in {path} does not match its checksum: the file was altered; {fix}")
    try:
        if meta.get("header_sha256") != _header_digest(meta):
            raise TransformFileError(
                f"the parameters in the header of {path} do not match their checksum: the file was edited; {fix}"
            )
        params = dict(meta["params"])
        params["names"] = tuple(params["names"])
        transformation = Transformation(**params)
        sides = [
            SideFit(*(contents[f"{name}_{side}"] for name in _ARRAYS), float(meta["epsilon"][side]))
            for side in ("a", "b")
        ]
    except TransformFileError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise TransformFileError(f"{path} has an incomplete header ({exc!r}); {fix}") from None
    transformation._set_fitted(*sides)
    return transformation
