"""Saving and loading a fitted Transformation: exact round trip, no pickle, corrupt files refused."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from equivtest.capture import capture_neighbourhoods
from equivtest.errors import NotFittedError, TransformFileError
from equivtest.persist import FORMAT_VERSION
from equivtest.sampling import GaussianNeighbourhood, GridPoints, Sampler
from equivtest.transform import Transformation
from tests._nets import small_mlp

ARRAYS = {f"{name}_{side}" for name in ("activations", "coordinates", "eigenvalues") for side in ("a", "b")}
REFIT = r"refit the transformation"


@pytest.fixture(scope="module")
def acts():
    sample_set = Sampler(GridPoints(-1, 1, 64), GaussianNeighbourhood(64, 0.05), seed=0).draw()
    out = []
    for seed in (0, 1):
        out.extend(capture_neighbourhoods(small_mlp(seed), sample_set.samples, sample_set.neighbourhoods, "act1"))
    return tuple(out)


@pytest.fixture(scope="module")
def fitted(acts):
    return Transformation(3).fit(*acts)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("saved") / "transformation.npz"
    fitted.save(path)
    return path


def read_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def header(contents: dict) -> dict:
    return json.loads(bytes(contents["__meta__"]).decode())


def write_npz(path, contents: dict, meta: dict | None = None) -> Path:
    """Write ``contents`` as an npz, with ``meta`` as the header when given (else the old one)."""
    contents = dict(contents)
    if meta is not None:
        contents["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as handle:
        np.savez(handle, **contents)
    return Path(path)


def assert_refused(path, match: str = REFIT):
    with pytest.raises(TransformFileError, match=match) as info:
        Transformation.load(path)
    assert isinstance(info.value, ValueError)
    return info.value


# -- round trip -------------------------------------------------------------------------


def test_round_trip_gives_identical_predictions(fitted, saved, acts):
    sa, _, sb, _ = acts
    loaded = Transformation.load(saved)
    queries = {"b": np.vstack([sa, sa[:7] + 1e-3]), "a": np.vstack([sb, sb[:7] - 1e-3])}
    for to, x in queries.items():
        np.testing.assert_array_equal(loaded.predict(x, to=to), fitted.predict(x, to=to))
        source = "a" if to == "b" else "b"
        np.testing.assert_array_equal(loaded.embed(x, source), fitted.embed(x, source))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.diffusion_residual() == fitted.diffusion_residual()


def test_round_trip_keeps_fitted_arrays_and_epsilon(fitted, saved):
    loaded = Transformation.load(saved)
    for side in ("a", "b"):
        old, new = getattr(fitted, f"side_{side}_"), getattr(loaded, f"side_{side}_")
        np.testing.assert_array_equal(new.activations, old.activations)
        np.testing.assert_array_equal(new.coordinates, old.coordinates)
        np.testing.assert_array_equal(new.eigenvalues, old.eigenvalues)
        assert new.epsilon == old.epsilon
    np.testing.assert_array_equal(loaded.alignment_ab_, fitted.alignment_ab_)
    np.testing.assert_array_equal(loaded.alignment_ba_, fitted.alignment_ba_)


def test_round_trip_with_non_default_parameters(acts, tmp_path):
    t = Transformation(
        4, epsilon=0.7, epsilon_k=5, rcond=1e-8, k_neighbours=20,
        smoothing=1e-12, rbf_kernel="cubic", names=("small", "large"),
    ).fit(*acts)
    path = tmp_path / "sub" / "dir" / "t.npz"  # missing folders are created
    t.save(path)
    loaded = Transformation.load(str(path))
    assert loaded.get_params() == t.get_params()
    assert isinstance(loaded.get_params()["names"], tuple)
    sa, _, sb, _ = acts
    np.testing.assert_array_equal(loaded.predict(sa, to="large"), t.predict(sa, to="large"))
    np.testing.assert_array_equal(loaded.predict(sb, to="small"), t.predict(sb, to="small"))


def test_save_overwrites_an_existing_file(fitted, acts, tmp_path):
    path = tmp_path / "t.npz"
    other = Transformation(4).fit(*acts)
    other.save(path)
    fitted.save(path)
    assert Transformation.load(path).n_eigenvectors == 3


def test_load_as_classmethod_and_function_agree(saved):
    from equivtest.persist import load_transformation

    assert load_transformation(saved).get_params() == Transformation.load(saved).get_params()


# -- the format -------------------------------------------------------------------------


def test_file_holds_no_pickled_objects(saved):
    contents = read_npz(saved)  # allow_pickle=False reads every entry
    assert set(contents) == ARRAYS | {"__meta__"}
    for name, array in contents.items():
        assert array.dtype != object, name
        assert array.dtype == (np.uint8 if name == "__meta__" else np.float64), name
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == sorted(f"{k}.npy" for k in contents)


def test_header_is_plain_json_with_version_and_checksums(saved):
    meta = header(read_npz(saved))
    assert meta["format"] == "equivtest.transformation"
    assert meta["format_version"] == FORMAT_VERSION
    assert set(meta["sha256"]) == ARRAYS
    assert all(len(v) == 64 for v in meta["sha256"].values())
    assert meta["params"]["n_eigenvectors"] == 3


def test_save_leaves_no_temporary_file(fitted, tmp_path):
    path = tmp_path / "t.npz"
    fitted.save(path)
    fitted.save(path)  # and again, over the first
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]


def test_failed_save_keeps_old_file_and_leaves_no_temporary(fitted, acts, tmp_path, monkeypatch):
    path = tmp_path / "t.npz"
    fitted.save(path)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="simulated"):
        Transformation(4).fit(*acts).save(path)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["t.npz"]
    assert path.read_bytes() == before


def test_unfitted_save_writes_nothing(tmp_path):
    with pytest.raises(NotFittedError):
        Transformation(3).save(tmp_path / "t.npz")
    assert list(tmp_path.iterdir()) == []


# -- damaged files ----------------------------------------------------------------------


def test_truncated_file_is_refused(saved, tmp_path):
    raw = saved.read_bytes()
    path = tmp_path / "truncated.npz"
    path.write_bytes(raw[: len(raw) // 2])
    assert_refused(path, match=r"not a readable transformation file.*" + REFIT)


@given(fraction=st.floats(min_value=0.0, max_value=1.0, exclude_max=True))
def test_any_truncation_is_refused(saved, tmp_path_factory, fraction):
    raw = saved.read_bytes()
    path = tmp_path_factory.mktemp("trunc") / "t.npz"
    path.write_bytes(raw[: int(fraction * len(raw))])
    assert_refused(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.npz"
    path.write_bytes(b"")
    assert_refused(path)


def test_random_bytes_are_refused(tmp_path):
    path = tmp_path / "random.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_refused(path, match=r"not a readable transformation file.*" + REFIT)


def test_plain_npy_file_is_refused(tmp_path):
    path = tmp_path / "plain.npy"
    np.save(path, np.arange(5.0))
    assert_refused(path)


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_one_altered_value_is_refused(saved, tmp_path, name):
    contents = read_npz(saved)
    contents[name] = contents[name].copy()
    contents[name].flat[0] += 1e-9  # the old header (and its checksums) is kept
    path = write_npz(tmp_path / "altered.npz", contents)
    error = assert_refused(path, match=rf"array {name!r} .* does not match its checksum: the file was altered")
    assert "refit" in str(error)


def test_changed_dtype_is_refused(saved, tmp_path):
    contents = read_npz(saved)
    contents["eigenvalues_a"] = contents["eigenvalues_a"].astype(np.float32)
    assert_refused(write_npz(tmp_path / "f32.npz", contents), match=r"'eigenvalues_a'.*checksum")


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_other_format_version_is_refused(saved, tmp_path, version):
    contents = read_npz(saved)
    meta = header(contents)
    meta["format_version"] = version
    path = write_npz(tmp_path / "v.npz", contents, meta)
    assert_refused(path, match=rf"format version {version!r}; this equivtest reads version {FORMAT_VERSION}\..*" + REFIT)


def test_other_format_is_refused(saved, tmp_path):
    contents = read_npz(saved)
    meta = header(contents)
    meta["format"] = "something.else"
    assert_refused(write_npz(tmp_path / "f.npz", contents, meta), match=r"not an equivtest transformation.*'something.else'")


def test_array_missing_from_file_is_refused(saved, tmp_path):
    contents = read_npz(saved)
    del contents["coordinates_b"]  # the header still lists it
    path = write_npz(tmp_path / "missing.npz", contents)
    assert_refused(path, match=r"header lists .*'coordinates_b'.*" + REFIT)


def test_array_missing_from_header_is_refused(saved, tmp_path):
    contents = read_npz(saved)
    meta = header(contents)
    del meta["sha256"]["activations_a"]
    path = write_npz(tmp_path / "missing.npz", contents, meta)
    assert_refused(path, match=r"holds arrays .*'activations_a'.*" + REFIT)


def test_extra_array_is_refused(saved, tmp_path):
    contents = read_npz(saved)
    contents["extra"] = np.zeros(3)
    assert_refused(write_npz(tmp_path / "extra.npz", contents), match=r"'extra'.*" + REFIT)


def test_missing_header_is_refused(saved, tmp_path):
    contents = read_npz(saved)
    del contents["__meta__"]
    assert_refused(write_npz(tmp_path / "nometa.npz", contents), match=r"no valid header.*" + REFIT)


def test_header_that_is_not_json_is_refused(saved, tmp_path):
    contents = read_npz(saved)
    contents["__meta__"] = np.frombuffer(b"{not json", dtype=np.uint8)
    assert_refused(write_npz(tmp_path / "badjson.npz", contents), match=r"no valid header.*" + REFIT)


def test_non_existent_path_is_refused(tmp_path):
    with pytest.raises(TransformFileError, match=r"no saved transformation at .*nowhere\.npz"):
        Transformation.load(tmp_path / "nowhere.npz")


def test_directory_is_refused(tmp_path):
    assert_refused(tmp_path)


@pytest.mark.parametrize("key", ["params", "epsilon"])
def test_header_missing_a_key_is_refused(saved, tmp_path, key):
    """BUG: a header without "params" or "epsilon" escapes as a bare KeyError."""
    contents = read_npz(saved)
    meta = header(contents)
    del meta[key]
    assert_refused(write_npz(tmp_path / "nokey.npz", contents, meta))


@pytest.mark.parametrize("param, value", [("smoothing", 1e-3), ("rbf_kernel", "cubic")])
def test_hand_edited_parameters_are_refused(saved, tmp_path, param, value):
    """BUG: the header's parameters are not covered by any checksum, so editing one
    (which changes every prediction) loads silently; persist.py promises that a
    hand-edited file is refused."""
    contents = read_npz(saved)
    meta = header(contents)
    meta["params"][param] = value
    assert_refused(write_npz(tmp_path / "edited.npz", contents, meta))


def _central_directory_offset(raw: bytes, member: str) -> int:
    """Offset of ``member``'s central-directory record in a zip file."""
    with zipfile.ZipFile(__import__("io").BytesIO(raw)) as archive:
        names = archive.namelist()
    offset = raw.index(b"PK\x01\x02")
    for name in names:
        if name == member:
            return offset
        name_len, extra_len, comment_len = struct.unpack("<HHH", raw[offset + 28 : offset + 34])
        offset += 46 + name_len + extra_len + comment_len
    raise KeyError(member)


def _set_encrypted_flag(raw: bytearray) -> None:
    offset = _central_directory_offset(bytes(raw), "__meta__.npy")
    raw[offset + 8] |= 0x01  # general purpose flag bit 0: encrypted


def _unknown_compression(raw: bytearray) -> None:
    offset = _central_directory_offset(bytes(raw), "__meta__.npy")
    raw[offset + 10 : offset + 12] = struct.pack("<H", 99)  # compression method 99


def _long_npy_header(raw: bytearray) -> None:
    start = raw.index(b"\x93NUMPY", raw.index(b"activations_a.npy"))
    raw[start + 9] ^= 0x01  # high byte of the npy header length


@pytest.mark.parametrize("corrupt", [_set_encrypted_flag, _unknown_compression, _long_npy_header],
                         ids=["encrypted-flag", "compression-method", "npy-header-length"])
def test_single_bit_corruptions_are_refused(saved, tmp_path, corrupt):
    """BUG: load_transformation catches only BadZipFile/EOFError/OSError/ValueError/KeyError,
    so some one-bit corruptions escape as RuntimeError, NotImplementedError or
    tokenize.TokenError instead of TransformFileError."""
    raw = bytearray(saved.read_bytes())
    corrupt(raw)
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(raw))
    assert_refused(path, match=r"not a readable transformation file.*" + REFIT)
