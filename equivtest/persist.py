"""Saving and loading fitted estimators: npz arrays plus a JSON header, no pickle.

One ``.npz`` file holds the arrays that determine the fit and a JSON header (stored
as bytes under ``__meta__``) with the format version, the parameters and a SHA-256
of every array. Loading checks all of it, then rebuilds the interpolants from the
arrays (deterministic), so a truncated, corrupted or hand-edited file is refused
with a clear error instead of giving silently different predictions.

The zip directory and every array's .npy header are checked (names, dtypes, sizes
within a stated cap, see :func:`equivtest._io.read_npz`) before a byte of data is
read. The checksums catch accidental damage only, not tampering: with
``EQUIVTEST_HMAC_KEY`` set the header also carries an HMAC-SHA256, and loading
refuses a file without a valid one (docs/formats.md).
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from ._io import NpzRefused, atomic_write_bytes, read_npz, sign, signature_problem
from .errors import TransformFileError

FORMAT = "equivtest.transformation"
FORMAT_VERSION = 1
_ARRAYS = ("activations", "coordinates", "eigenvalues")


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    h.update(array.tobytes())
    return h.hexdigest()


_TRANSFORMATION_FIELDS = ("params", "epsilon")  # header fields of a Transformation that change predictions


def _header_digest(meta: dict) -> str:
    """Checksum of the header fields that change predictions (arrays have their own)."""
    return _fields_digest(meta, _TRANSFORMATION_FIELDS)


def write_checked_npz(path, header: dict, arrays: dict, checked_fields) -> Path:
    """Write ``arrays`` and the JSON ``header`` (which must hold ``format`` and ``format_version``)
    atomically, with a checksum of every array and of the header's ``checked_fields``, and an
    HMAC when ``EQUIVTEST_HMAC_KEY`` is set. Any estimator saves through this (the maps of
    :mod:`equivtest.maps`); a Transformation has its own, older layout below."""
    meta = {**header, "sha256": {k: _digest(v) for k, v in arrays.items()}}
    meta["header_sha256"] = _fields_digest(json.loads(json.dumps(meta)), checked_fields)
    signature = sign(json.loads(json.dumps(meta)))
    if signature is not None:
        meta["hmac_sha256"] = signature
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_checked_npz(path, formats: dict, what: str, fix: str, checked_fields, dtypes) -> tuple[dict, dict]:
    """Read and check a file written by :func:`write_checked_npz`: ``(header, arrays)``.

    ``formats`` maps each accepted format name to the version this equivtest reads;
    ``checked_fields(header)`` names the header fields whose checksum is verified;
    ``dtypes(name)`` the dtype array ``name`` must have (``None``: not allowed). The zip
    directory and .npy headers are checked before any data is read (:func:`read_npz`).
    """
    path = Path(path)
    if not path.exists():
        raise TransformFileError(f"no saved {what} at {path}")
    try:
        with open(path, "rb") as handle:
            return _checked(handle, path, formats, what, fix, checked_fields, dtypes)
    except OSError as exc:
        raise TransformFileError(f"{path} is not a readable {what} file ({exc!r}); {fix}") from None


def _checked(handle, path, formats: dict, what: str, fix: str, checked_fields, dtypes) -> tuple[dict, dict]:
    """The checks of :func:`read_checked_npz` on an open binary file (``path`` names it)."""
    try:
        contents = read_npz(handle, lambda name: np.uint8 if name == "__meta__" else dtypes(name))
    except NpzRefused as exc:
        raise TransformFileError(f"{path} is not a readable {what} file ({exc}); {fix}") from None
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
        raise TransformFileError(f"{path} has format version {meta.get('format_version')!r}; this equivtest reads "
                                 f"version {version}. {fix}")
    expected = meta.get("sha256", {})
    if not isinstance(expected, dict) or set(expected) != set(contents):
        raise TransformFileError(f"{path} holds arrays {sorted(contents)} but its header lists {sorted(expected)}; {fix}")
    for name, array in contents.items():
        if _digest(array) != expected[name]:
            raise TransformFileError(f"array {name!r} in {path} does not match its checksum: the file was altered; {fix}")
    try:
        if meta.get("header_sha256") != _fields_digest(meta, checked_fields(meta)):
            raise TransformFileError(f"the parameters in the header of {path} do not match their checksum: "
                                     f"the file was edited; {fix}")
    except (KeyError, TypeError, ValueError) as exc:
        raise TransformFileError(f"{path} has an incomplete header ({exc!r}); {fix}") from None
    problem = signature_problem({k: v for k, v in meta.items() if k != "hmac_sha256"}, meta.get("hmac_sha256"))
    if problem:
        raise TransformFileError(f"{path} is refused: {problem}. Refit and save it with the key set, if you trust it")
    return meta, contents


def _fields_digest(meta: dict, fields) -> str:
    return hashlib.sha256(json.dumps({k: meta[k] for k in fields}, sort_keys=True).encode()).hexdigest()


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
    signature = sign(json.loads(json.dumps(meta)))  # over the header as a loader reads it back
    if signature is not None:
        meta["hmac_sha256"] = signature
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def _allowed(name: str):
    """The dtype each array of a transformation file has (None: no such array)."""
    if name == "__meta__":
        return np.uint8
    return np.float64 if name.rsplit("_", 1)[0] in _ARRAYS and name[-2:] in ("_a", "_b") else None


def load_transformation(path):
    path = Path(path)
    if not path.exists():
        raise TransformFileError(f"no saved transformation at {path}")
    try:
        with open(path, "rb") as handle:
            return _load(handle, path)
    except OSError as exc:
        raise TransformFileError(f"{path} is not a readable transformation file ({exc!r}); {_FIX}") from None


def load_transformation_bytes(data: bytes, label):
    """:func:`load_transformation` from the bytes of a file already read (``label`` names it
    in errors): a caller that checked the bytes' own hash loads exactly what it checked."""
    return _load(io.BytesIO(data), label)


_FIX = "refit the transformation and save it again (the file must not be edited by hand)"


def _load(handle, path):
    from .transform import SideFit, Transformation

    meta, contents = _checked(handle, path, {FORMAT: FORMAT_VERSION}, "transformation", _FIX,
                              lambda meta: _TRANSFORMATION_FIELDS, lambda name: _allowed(name))
    try:
        params = dict(meta["params"])
        params["names"] = tuple(params["names"])
        transformation = Transformation(**params)
        sides = [
            SideFit(*(contents[f"{name}_{side}"] for name in _ARRAYS), float(meta["epsilon"][side]))
            for side in ("a", "b")
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise TransformFileError(f"{path} has an incomplete header ({exc!r}); {_FIX}") from None
    transformation._set_fitted(*sides)
    return transformation
