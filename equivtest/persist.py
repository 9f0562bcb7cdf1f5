"""Saving and loading fitted estimators: npz arrays plus a JSON header, no pickle.

One ``.npz`` file holds the arrays that determine the fit and a JSON header (stored
as bytes under ``__meta__``) with the format name and version, the parameters and a
SHA-256 of every array and of the header fields that change predictions. Loading checks
all of it, so a truncated, corrupted or hand-edited file is refused with a clear error
instead of giving silently different predictions. :func:`write_checked_npz` and
:func:`read_checked_npz` do this for any estimator (a ``Transformation`` here, the maps
of :mod:`equivtest.maps`); a Transformation's interpolants are rebuilt from its arrays
(deterministic).
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
_CHECKED_FIELDS = ("params", "epsilon")  # header fields of a Transformation that change predictions


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


def _header_digest(meta: dict, fields=_CHECKED_FIELDS) -> str:
    """Checksum of the header fields that change predictions (arrays have their own)."""
    return hashlib.sha256(json.dumps({k: meta[k] for k in fields}, sort_keys=True).encode()).hexdigest()


def write_checked_npz(path, header: dict, arrays: dict, checked_fields) -> Path:
    """Write ``arrays`` and the JSON ``header`` (which must hold ``format`` and ``format_version``)
    atomically, with a checksum of every array and of the header's ``checked_fields``."""
    meta = {**header, "sha256": {k: _digest(v) for k, v in arrays.items()}}
    meta["header_sha256"] = _header_digest(json.loads(json.dumps(meta)), checked_fields)
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_checked_npz(path, formats: dict, what: str, fix: str, checked_fields=None) -> tuple[dict, dict]:
    """Read a file written by :func:`write_checked_npz` and check it: ``(header, arrays)``.

    ``formats`` maps each accepted format name to the version this equivtest reads;
    ``checked_fields(header)`` names the header fields whose checksum is verified.
    """
    path = Path(path)
    if not path.exists():
        raise TransformFileError(f"no saved {what} at {path}")
    try:
        with open(path, "rb") as handle, np.load(handle, allow_pickle=False) as npz:
            contents = {k: npz[k] for k in npz.files}
    except Exception as exc:  # zipfile, zlib, struct, tokenize...: every one means "unreadable"
        raise TransformFileError(f"{path} is not a readable {what} file ({exc!r}); {fix}") from None
    try:
        meta = json.loads(bytes(contents.pop("__meta__")).decode())
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TransformFileError(f"{path} has no valid header ({exc}); {fix}") from None
    if not isinstance(meta, dict):
        raise TransformFileError(f"{path} has no valid header (not a JSON object); {fix}")
    if meta.get("format") not in formats:
        raise TransformFileError(f"{path} is not an equivtest {what} (format {meta.get('format')!r})")
    version = formats[meta["format"]]
    if meta.get("format_version") != version:
        raise TransformFileError(
            f"{path} has format version {meta.get('format_version')!r}; this equivtest reads version "
            f"{version}. {fix}"
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
        fields = _CHECKED_FIELDS if checked_fields is None else checked_fields(meta)
        if meta.get("header_sha256") != _header_digest(meta, fields):
            raise TransformFileError(
                f"the parameters in the header of {path} do not match their checksum: the file was edited; {fix}"
            )
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, TransformFileError):
            raise
        raise TransformFileError(f"{path} has an incomplete header ({exc!r}); {fix}") from None
    return meta, contents


def save_transformation(transformation, path) -> Path:
    from . import __version__

    arrays = {}
    for side in ("a", "b"):
        fit = getattr(transformation, f"side_{side}_")
        for name in _ARRAYS:
            arrays[f"{name}_{side}"] = np.asarray(getattr(fit, name), dtype=np.float64)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "equivtest_version": __version__,
        "params": transformation.get_params(),
        "epsilon": {"a": transformation.side_a_.epsilon, "b": transformation.side_b_.epsilon},
    }
    return write_checked_npz(path, header, arrays, _CHECKED_FIELDS)


def load_transformation(path):
    from .transform import SideFit, Transformation

    path = Path(path)
    fix = "refit the transformation and save it again (the file must not be edited by hand)"
    meta, contents = read_checked_npz(path, {FORMAT: FORMAT_VERSION}, "transformation", fix)
    try:
        params = dict(meta["params"])
        params["names"] = tuple(params["names"])
        transformation = Transformation(**params)
        sides = [
            SideFit(*(contents[f"{name}_{side}"] for name in _ARRAYS), float(meta["epsilon"][side]))
            for side in ("a", "b")
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise TransformFileError(f"{path} has an incomplete header ({exc!r}); {fix}") from None
    transformation._set_fitted(*sides)
    return transformation
