"""The file layer: atomic writes, HMAC signing, and npz files read within stated bounds."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- tamper detection: an HMAC keyed from the environment ------------------------------
#
# The SHA-256 checksums in baselines and saved transformations catch accidental damage
# (truncation, bit flips, a hand edit that forgets the checksum), not tampering: anyone
# can recompute them. With a secret key in EQUIVTEST_HMAC_KEY, writers add an
# HMAC-SHA256 of the same content, and readers refuse every file whose HMAC is missing
# or wrong. Without the key nothing is signed or verified (docs/formats.md).

HMAC_KEY_ENV = "EQUIVTEST_HMAC_KEY"
HMAC_MIN_KEY_CHARS = 16


def hmac_key() -> bytes | None:
    """The signing key from ``EQUIVTEST_HMAC_KEY``, or ``None`` when it is unset or empty."""
    from .errors import EquivtestError

    value = os.environ.get(HMAC_KEY_ENV, "")
    if not value:
        return None
    if len(value) < HMAC_MIN_KEY_CHARS:
        raise EquivtestError(
            f"{HMAC_KEY_ENV} holds {len(value)} characters; a signing key needs at least {HMAC_MIN_KEY_CHARS} "
            "(e.g. the output of `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return value.encode()


def canonical_json(payload) -> bytes:
    """The bytes checksums and HMACs are computed over: sorted keys, the default separators."""
    return json.dumps(payload, sort_keys=True).encode()


def sign(payload) -> str | None:
    """HMAC-SHA256 of ``payload``'s canonical JSON with the environment's key (``None``: no key set)."""
    key = hmac_key()
    return None if key is None else hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()


def signature_problem(payload, stored) -> str | None:
    """Why ``stored`` is not a valid HMAC of ``payload`` under the environment's key (``None``: it is,
    or no key is set, in which case nothing can be verified)."""
    key = hmac_key()
    if key is None:
        return None
    if not isinstance(stored, str):
        return (f"it carries no HMAC, but {HMAC_KEY_ENV} is set, so every file must be signed with that key "
                "(it was written without the key, or forged)")
    expected = hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, stored):
        return (f"its HMAC does not match the key in {HMAC_KEY_ENV}: it was altered after signing, forged, "
                "or signed with another key")
    return None


# -- npz files read with bounds checked first ------------------------------------------

# What the zip directory may declare: all members together at most NPZ_EXPANSION times
# the file's size plus NPZ_SLACK_BYTES, uncompressed. equivtest writes transformations
# uncompressed (declared size = stored size) and plot arrays compressed but small, so
# only a crafted file (a "zip bomb") comes near this.
NPZ_EXPANSION = 4
NPZ_SLACK_BYTES = 64 * 2**20
NPZ_MAX_HEADER = 10_000  # bytes of one member's .npy header (numpy's own default cap)


class NpzRefused(ValueError):
    """An npz file that is unreadable, or whose directory or headers break the bounds."""


def read_npz(handle, allowed) -> dict[str, np.ndarray]:
    """Arrays of the npz in the binary file ``handle``, checked before any data is read.

    ``allowed(name)`` gives the dtype (or a tuple of dtypes) an array ``name`` may have, or ``None`` if no
    such array may be in the file. From the zip directory alone: every member is a
    ``.npy`` named once, allowed, and the declared sizes keep within the cap above.
    From each member's .npy header (at most NPZ_MAX_HEADER bytes): its dtype is the
    allowed one (never an object dtype) and its shape accounts for exactly the declared
    size. Only then is data read, and zipfile stops each member at its declared size.
    Raises :class:`NpzRefused`; nothing is ever unpickled.
    """
    import zipfile

    fmt = np.lib.format
    try:
        handle.seek(0, os.SEEK_END)
        on_disk = handle.tell()
        handle.seek(0)
        with zipfile.ZipFile(handle) as archive:
            infos = archive.infolist()
            names = [info.filename for info in infos]
            if len(set(names)) != len(names):
                raise NpzRefused(f"a member is named twice ({sorted(n for n in names if names.count(n) > 1)})")
            declared = 0
            for info in infos:
                stem = info.filename.removesuffix(".npy")
                if not info.filename.endswith(".npy") or allowed(stem) is None:
                    raise NpzRefused(f"it holds an unexpected array {stem!r}")
                declared += info.file_size
            cap = NPZ_EXPANSION * on_disk + NPZ_SLACK_BYTES
            if declared > cap:
                raise NpzRefused(
                    f"its members would expand to {declared:,} bytes, more than the cap of {cap:,} "
                    f"({NPZ_EXPANSION} x its {on_disk:,} bytes + {NPZ_SLACK_BYTES // 2**20} MiB)"
                )
            out = {}
            for info in infos:
                stem = info.filename.removesuffix(".npy")
                want = allowed(stem)
                accepted = tuple(np.dtype(d) for d in (want if isinstance(want, tuple) else (want,)))
                with archive.open(info) as member:
                    version = fmt.read_magic(member)
                    if version not in ((1, 0), (2, 0)):
                        raise NpzRefused(f"array {stem!r} has .npy format version {version}")
                    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, found = read_header(member, max_header_size=NPZ_MAX_HEADER)
                    if found.hasobject or found not in accepted:
                        raise NpzRefused(
                            f"array {stem!r} is {found}, not {' or '.join(map(str, accepted))} as written, "
                            "so it cannot match its checksum"
                        )
                    size = int(np.prod(shape, dtype=np.int64)) * found.itemsize
                    if member.tell() + size != info.file_size:
                        raise NpzRefused(f"array {stem!r} declares shape {shape}, which does not fill its member")
                with archive.open(info) as member:
                    out[stem] = fmt.read_array(member, allow_pickle=False, max_header_size=NPZ_MAX_HEADER)
            return out
    except NpzRefused:
        raise
    except Exception as exc:  # zipfile, zlib, struct, numpy's header parser...: every one means "unreadable"
        raise NpzRefused(repr(exc)) from None
