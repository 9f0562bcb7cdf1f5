"""Saved transformations: npz bounds checked before any data is read (zip bombs), and
tamper detection with an HMAC key."""

from __future__ import annotations

import io
import json
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from equivtest.errors import TransformFileError
from equivtest.persist import _digest, _header_digest
from equivtest.transform import Transformation
from tests.test_persist import acts, fitted, header, read_npz, saved, write_npz  # noqa: F401  (fixtures)

GIB = 2**30
KEY = "s" * 32


def npy_header(shape, descr="<f8") -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def deflated_zeros(prefix: bytes, n_mib: int) -> tuple[bytes, int]:
    """A raw deflate stream of ``prefix`` and ``n_mib`` MiB of zeros (about 1 kB per MiB), and its CRC."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH)
    chunk = bytes(2**20)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every MiB after a full flush
    crc = zlib.crc32(prefix)
    for _ in range(n_mib):
        crc = zlib.crc32(chunk, crc)
    return head + block * n_mib + c.flush(zlib.Z_FINISH), crc


def zip_file(members: list[tuple[str, bytes, int, int, int]]) -> bytes:
    """A zip of (name, stored data, method, crc, uncompressed size) members, written by hand."""
    out, central = io.BytesIO(), io.BytesIO()
    for name, data, method, crc, size in members:
        offset = out.tell()
        out.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(data), size, len(name), 0))
        out.write(name.encode() + data)
        central.write(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(data), size,
                                  len(name), 0, 0, 0, 0, 0, offset))
        central.write(name.encode())
    start = out.tell()
    out.write(central.getvalue())
    out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(central.getvalue()), start, 0))
    return out.getvalue()


def bomb(path, member: str) -> None:
    """About 1 MB on disk; ``member`` inflates to 1 GiB of float64 zeros."""
    meta = npy_header((2,), "|u1") + b"{}"
    data, crc = deflated_zeros(npy_header((GIB // 8,)), GIB // 2**20)
    path.write_bytes(zip_file([("__meta__.npy", meta, 0, zlib.crc32(meta), len(meta)),
                               (f"{member}.npy", data, 8, crc, GIB + len(npy_header((GIB // 8,))))]))


@pytest.mark.parametrize("member, reason", [
    ("activations_a", r"expand to 1,073,74\d,\d+ bytes, more than the cap"),  # a name the format has
    ("bomb", r"unexpected array 'bomb'"),
])
def test_a_zip_bomb_is_refused_before_its_data_is_read(tmp_path, member, reason):
    path = tmp_path / "bomb.npz"
    bomb(path, member)
    assert path.stat().st_size < 1.1e6
    tracemalloc.start()
    try:
        with pytest.raises(TransformFileError, match=rf"not a readable transformation file \(.*{reason}"):
            Transformation.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"{peak:,} bytes allocated while refusing the file"


def test_the_cap_is_what_the_docs_state():
    from equivtest._io import NPZ_EXPANSION, NPZ_SLACK_BYTES

    assert (NPZ_EXPANSION, NPZ_SLACK_BYTES) == (4, 64 * 2**20)


def test_a_shape_that_does_not_fill_its_member_is_refused(tmp_path):
    meta = npy_header((2,), "|u1") + b"{}"
    data = npy_header((1000,)) + bytes(80)  # says 1000 floats, holds 10
    path = tmp_path / "short.npz"
    path.write_bytes(zip_file([("__meta__.npy", meta, 0, zlib.crc32(meta), len(meta)),
                               ("activations_a.npy", data, 0, zlib.crc32(data), len(data))]))
    with pytest.raises(TransformFileError, match=r"'activations_a' declares shape \(1000,\), which does not fill"):
        Transformation.load(path)


def test_an_object_array_is_refused_from_its_header(saved, tmp_path):  # noqa: F811
    contents = read_npz(saved)
    contents["eigenvalues_a"] = np.array([1.0, "x"], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **contents)  # np.savez pickles the object array
    path = tmp_path / "object.npz"
    path.write_bytes(buffer.getvalue())
    with pytest.raises(TransformFileError, match=r"'eigenvalues_a' is object, not float64"):
        Transformation.load(path)


# -- case 8: tamper detection ------------------------------------------------------------


def forged(saved, tmp_path):  # noqa: F811
    """The saved file with one value changed and every checksum recomputed, as anyone can."""
    contents = read_npz(saved)
    meta = header(contents)
    meta.pop("hmac_sha256", None)
    contents["coordinates_b"] = contents["coordinates_b"] * 1.5
    meta["sha256"]["coordinates_b"] = _digest(contents["coordinates_b"])
    meta["header_sha256"] = _header_digest(meta)
    return write_npz(tmp_path / "forged.npz", contents, meta)


def test_a_forged_transformation_is_refused_with_a_key(fitted, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EQUIVTEST_HMAC_KEY", KEY)
    path = tmp_path / "signed.npz"
    fitted.save(path)
    assert "hmac_sha256" in header(read_npz(path))
    Transformation.load(path)  # the genuine file loads
    with pytest.raises(TransformFileError, match=r"carries no HMAC, but EQUIVTEST_HMAC_KEY is set"):
        Transformation.load(forged(path, tmp_path))
    contents = read_npz(forged(path, tmp_path))
    meta = header(contents)
    meta["hmac_sha256"] = header(read_npz(path))["hmac_sha256"]  # the genuine file's HMAC
    with pytest.raises(TransformFileError, match=r"HMAC does not match the key in EQUIVTEST_HMAC_KEY"):
        Transformation.load(write_npz(tmp_path / "replayed.npz", contents, meta))


def test_without_a_key_a_forged_transformation_loads(saved, tmp_path):  # noqa: F811
    """What docs/formats.md says: the checksums catch damage, not forgery."""
    Transformation.load(forged(saved, tmp_path))


def test_hmac_header_is_plain_json(fitted, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("EQUIVTEST_HMAC_KEY", KEY)
    fitted.save(tmp_path / "t.npz")
    meta = header(read_npz(tmp_path / "t.npz"))
    assert len(meta["hmac_sha256"]) == 64 and json.loads(json.dumps(meta)) == meta
