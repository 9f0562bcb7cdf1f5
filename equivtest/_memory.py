"""Memory of a fit: a budget for its rows, rows kept on disk, and the peak of each stage.

- :func:`parse_bytes`: ``4 * 2**30``, ``"4GiB"``, ``"500MB"`` as a number of bytes.
- :class:`RowStore`: makes the arrays of a fit's rows (activations and neighbourhood rows
  of both networks, and the per-row precision factors) in memory while they fit the
  budget, else as files on disk read and written a block of rows at a time
  (:class:`DiskRows`, ``numpy.memmap``). The files live in a private temporary folder
  that is removed when the store is closed and when the last array using it is dropped.
- :class:`StagePeaks`: the peak memory of each stage of a fit or an evaluation.

The budget bounds what the fit holds in memory. Rows on disk are read through the page
cache: their pages count in the process's resident set while mapped, but the system can
reclaim them (they are clean once written back), so they do not need the budget's room.
"""

from __future__ import annotations

import mmap
import os
import re
import shutil
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import FitConfigError

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
          "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value, name: str = "memory_budget") -> int:
    """A number of bytes from an int (bytes) or a string such as ``"4GiB"``, ``"512 MB"``, ``"2.5G"``.

    Decimal units (kB, MB, GB, TB; k, M, G, T) are powers of 1000, binary ones (KiB, MiB,
    GiB, TiB) powers of 1024. Anything else is a :class:`FitConfigError` naming the forms."""
    forms = "a whole number of bytes or a string such as \"4GiB\", \"512MB\" (kB/MB/GB are 1000^k, KiB/MiB/GiB 1024^k)"
    if isinstance(value, bool):
        raise FitConfigError(f"{name} must be {forms}, got {value!r}")
    if isinstance(value, Integral):
        number = int(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([A-Za-z]*)\s*", value)
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise FitConfigError(f"{name} must be {forms}, got {value!r}")
        number = int(float(match.group(1)) * _UNITS[unit])
    else:
        raise FitConfigError(f"{name} must be {forms}, got {value!r}")
    if number < 1:
        raise FitConfigError(f"{name} must be at least 1 byte, got {value!r}")
    return number


def format_bytes(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


# -- rows on disk ------------------------------------------------------------------------


class DiskRows:
    """An ``(n, ...)`` array in a file, read and written a block of rows at a time.

    ``rows[a:b]`` (or an index array, or a tuple whose first item is one of those) returns
    a new in-memory array; ``rows[key] = value`` writes. Each access maps the file
    (``numpy.memmap``) and then drops the pages it touched from the process
    (``madvise(MADV_DONTNEED)``; the data stay in the file and the page cache), so a pass
    over the rows never holds more than a block of them resident. ``np.asarray(rows)``
    reads the whole array into memory: code that must stay within a budget slices.
    """

    def __init__(self, path: Path, shape: tuple, dtype, keep_alive=None):
        self.path, self.shape, self.dtype = Path(path), tuple(int(s) for s in shape), np.dtype(dtype)
        self._keep_alive = keep_alive  # the folder's owner: removed once no array needs it
        self._map = np.memmap(self.path, dtype=self.dtype, mode="r+", shape=self.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            index = int(key) + (len(self) if key < 0 else 0)
            if not 0 <= index < len(self):
                raise IndexError(f"row {int(key)} is out of range for {len(self)} rows")
            return self[index : index + 1][0]
        try:
            return np.array(self._map[key])
        finally:
            self._drop()

    def __setitem__(self, key, value) -> None:
        try:
            self._map[key] = value
        finally:
            self._drop()

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def _drop(self) -> None:
        raw = getattr(self._map, "_mmap", None)
        if raw is not None and hasattr(raw, "madvise"):
            raw.madvise(mmap.MADV_DONTNEED)

    def __repr__(self) -> str:
        return f"DiskRows(shape={self.shape}, dtype={self.dtype}, path={str(self.path)!r})"


def drop_pages(view) -> None:
    """Drop the pages of ``view`` (a contiguous slice of a ``numpy.memmap``) from the process.

    ``madvise(MADV_DONTNEED)`` on the memory pages the slice spans: the data stay in the
    file and the page cache (the map is shared, so written pages are kept, to be written
    back), and a later read faults them in again. A page the slice shares with its
    neighbours is dropped too; the neighbour's next read brings it back. Does nothing
    for an array that is not a file map (dropping anonymous memory would lose it) and
    where the platform has no ``madvise``.
    """
    raw = getattr(view, "_mmap", None)
    if raw is None or not hasattr(raw, "madvise") or not view.flags.c_contiguous or view.nbytes == 0:
        return
    anchor = np.frombuffer(raw, dtype=np.uint8)  # the map's first byte, to find the slice in it
    try:
        start = view.ctypes.data - anchor.ctypes.data
    finally:
        del anchor  # release the buffer export, so that the map can be closed later
    page = mmap.PAGESIZE
    first = start - start % page
    last = min(len(raw), -(-(start + view.nbytes) // page) * page)
    if 0 <= first < last:
        raw.madvise(mmap.MADV_DONTNEED, first, last - first)


class _Folder:
    """A private temporary folder (mode 0700), removed once no array uses it any more, or at exit."""

    def __init__(self, parent: str | None):
        if parent is not None and not Path(parent).is_dir():
            raise FitConfigError(f"scratch_dir {parent!r} is not an existing folder; create it or give another "
                                 "(None: the system's temporary folder)")
        self.path = Path(tempfile.mkdtemp(prefix="equivtest-rows-", dir=parent))  # mode 0700
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), ignore_errors=True)

    def file(self, label: str, shape: tuple, dtype) -> DiskRows:
        """A new zero-filled file for ``shape`` x ``dtype``, made under a temporary name and
        renamed once it has its full size (a reader never sees a short file)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        final = self.path / f"{label}-{len(os.listdir(self.path))}.{np.dtype(dtype).name}"
        partial = final.with_suffix(final.suffix + ".partial")
        with open(partial, "wb") as handle:
            handle.truncate(max(nbytes, 1))
        os.replace(partial, final)
        return DiskRows(final, shape, dtype, keep_alive=self)


@dataclass
class RowStore:
    """Where a fit's rows live: in memory while they fit ``budget`` bytes beside the rows
    already held (``resident``) and what the fit will need later, else on disk
    (:class:`DiskRows`). ``budget=None``: always in memory, as before.
    """

    budget: int | None = None
    scratch_dir: str | None = None
    resident: int = 0
    reserve: int = 0  # what the fit holds besides the rows (held_bytes)
    streamed: list = field(default_factory=list)
    _folder: _Folder | None = None

    def fits(self, nbytes: int, later: int = 0) -> bool:
        return self.budget is None or self.resident + self.reserve + nbytes + later <= self.budget

    def array(self, shape: tuple, dtype, label: str, later: int = 0):
        """An array for ``shape`` x ``dtype`` (``np.empty``), or a file when it and ``later``
        bytes still to come would not fit the budget beside the rows already held."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if self.fits(nbytes, later):
            self.resident += nbytes
            return np.empty(shape, dtype=dtype)
        self.streamed.append({"rows": label, "bytes": nbytes})
        return self.folder().file(label, shape, dtype)

    def folder(self) -> "_Folder":
        if self._folder is None:
            self._folder = _Folder(self.scratch_dir)
        return self._folder

    def allocator(self):
        """``allocate(shape, dtype, label)`` for :func:`equivtest.capture.capture_neighbourhoods`.

        Sample rows ``(R, F)`` stay in memory (the fit needs them whole) and must leave
        room for what any fit holds (:func:`held_bytes`); neighbourhood rows ``(R, M, F)``
        also leave room for their precision factors, else they go to disk."""
        def allocate(shape, dtype, label):
            if len(shape) == 2:
                self.hold(shape)
                self.resident += int(np.prod(shape)) * np.dtype(dtype).itemsize
                return np.empty(shape, dtype=dtype)
            return self.array(shape, dtype, label, later=factor_bytes(shape))
        return allocate

    def keep(self, array, label: str, later: int = 0):
        """``array`` as it is if it fits beside what is held, else copied to disk a block at a time."""
        if isinstance(array, DiskRows):
            self.streamed.append({"rows": label, "bytes": array.nbytes})
            return array
        if self.fits(array.nbytes, later):
            self.resident += array.nbytes
            return array
        return take_rows(array, None, self, label, later)

    def factors(self, n_values: int):
        """The flat float64 buffer of one network's precision factors (see
        ``neighbourhood_precision_factors``): in memory if it fits beside the rows, else a
        ``numpy.memmap`` of a file that is unlinked at once (its space is freed when the
        buffer is dropped). Not counted as held: one network's factors go before the next's."""
        nbytes = int(n_values) * 8
        if self.fits(nbytes):
            return np.empty(int(n_values))
        self.streamed.append({"rows": "precision factors", "bytes": nbytes})
        rows = self.folder().file("factors", (int(n_values),), np.float64)
        mapped = np.memmap(rows.path, dtype=np.float64, mode="r+", shape=(int(n_values),))
        try:
            os.remove(rows.path)  # POSIX keeps the data while mapped
        except OSError:
            pass
        return mapped

    def hold(self, sample_shape: tuple) -> None:
        """Reserve room for what a fit on ``(R, F)`` sample rows holds however its rows are
        streamed (:func:`held_bytes`); refused when that alone exceeds the budget."""
        needed = held_bytes(*sample_shape)
        self.check_minimum(needed, f"{sample_shape[0]:,} rows of {sample_shape[1]:,} features")
        self.reserve = max(self.reserve, needed)

    def check_minimum(self, needed: int, what: str) -> None:
        """Refuse a fit whose part that must stay in memory (``needed`` bytes: ``what``) exceeds the budget."""
        if self.budget is not None and needed > self.budget:
            raise FitConfigError(
                f"memory_budget {format_bytes(self.budget)} is below what the fit must hold in memory even with its "
                f"rows streamed from disk: {format_bytes(needed)} ({what}: the sample rows in float64 and the "
                f"kernel's N x N matrices); raise memory_budget to at least {format_bytes(needed)}, or fit on fewer "
                "rows (max_rows)"
            )

    def describe(self) -> dict:
        return {"budget_bytes": self.budget, "rows_in_memory_bytes": self.resident, "streamed": list(self.streamed)}


def take_rows(array, rows, store: RowStore, label: str, later: int = 0):
    """``array[rows]`` (all rows when ``rows`` is None) made by ``store``, copied a block of rows at a time."""
    index = np.arange(len(array)) if rows is None else np.asarray(rows)
    out = store.array((len(index), *array.shape[1:]), array.dtype, label, later=later)
    per_row = max(1, int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize)
    step = max(1, _BLOCK_BYTES // per_row)
    for start in range(0, len(index), step):
        part = index[start : start + step]
        contiguous = len(part) and part[-1] - part[0] == len(part) - 1
        out[start : start + len(part)] = array[int(part[0]) : int(part[-1]) + 1] if contiguous else array[part]
    return out


_BLOCK_BYTES = 32 * 2**20


def factor_bytes(nb_shape: tuple) -> int:
    """Bytes of the precision factors of ``(R, M, F)`` neighbourhood rows: ``R F min(M - 1, F)`` float64."""
    r, m, f = (int(s) for s in nb_shape)
    return r * f * max(1, min(m - 1, f)) * 8


def held_bytes(n_rows: int, width: int) -> int:
    """What a fit holds in memory however its rows are streamed: both networks' sample rows
    in float64 (twice: the rows and the fitted copies) and four ``N x N`` float64 matrices
    of the kernel and its diffusion maps."""
    return 4 * n_rows * width * 8 + 4 * n_rows * n_rows * 8


# -- peak memory per stage ---------------------------------------------------------------

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+)\s+kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _can_reset() -> bool:
    if _status_kib("VmHWM") is None:
        return False
    try:
        with open(_CLEAR_REFS, "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class StagePeaks:
    """The peak memory of each stage, in bytes: ``peaks.stage("capture")`` starts a stage
    (ending the one before), ``peaks.finish()`` ends the last and returns ``{stage: bytes}``.

    On Linux the process's peak resident set (``VmHWM`` in ``/proc/self/status``) is reset
    at the start of each stage (``/proc/self/clear_refs`` with ``5``) and read at its end:
    the most memory resident at any moment of that stage, what was already held included,
    and pages of memory-mapped files included. Elsewhere (or where ``/proc`` cannot be
    written) the peak since the process started (``getrusage``'s ``ru_maxrss``), which is
    never reset and so is an upper bound for each stage. :attr:`measure` says which.

    Resetting ``VmHWM`` also lowers what ``getrusage`` reports afterwards; the highest peak
    seen is kept in :func:`process_peak`.
    """

    def __init__(self):
        self.resettable = _can_reset()
        self.measure = ("VmHWM: peak resident set of the stage (reset per stage)" if self.resettable else
                        "ru_maxrss: peak resident set since the process started (not reset per stage)")
        self.peaks: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self._current: str | None = None
        self._started = 0.0

    @property
    def current(self) -> str | None:
        """The stage being measured (``None`` between stages)."""
        return self._current

    def stage(self, name: str) -> None:
        self._end()
        self._current, self._started = name, time.perf_counter()
        if self.resettable:
            _note_peak(_read_peak(True))
            try:
                _CLEAR_REFS.write_text("5")
            except OSError:
                self.resettable = False

    def _end(self) -> None:
        if self._current is None:
            return
        peak = _read_peak(self.resettable)
        _note_peak(peak)
        name = self._current
        self.peaks[name] = max(self.peaks.get(name, 0), peak)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - self._started
        self._current = None

    def finish(self) -> dict:
        self._end()
        return dict(self.peaks)

    def record(self) -> dict:
        """What a run record keeps: the measure and each stage's peak in bytes."""
        return {"measure": self.measure, "peak_bytes": dict(self.peaks)}


_HIGHEST = [0]


def _read_peak(resettable: bool) -> int:
    if resettable:
        kib = _status_kib("VmHWM")
        if kib is not None:
            return kib * 1024
    import resource

    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def _note_peak(value: int) -> None:
    _HIGHEST[0] = max(_HIGHEST[0], int(value))


def process_peak() -> int:
    """The highest resident set this process has had, in bytes, across the stage resets."""
    return max(_HIGHEST[0], _read_peak(_status_kib("VmHWM") is not None))


def check_budget_value(value, name: str = "memory_budget") -> None:
    """``None`` or what :func:`parse_bytes` accepts."""
    if value is not None:
        parse_bytes(value, name)


# The stages whose peak memory a fit and an evaluation record, by the progress messages
# that start them (the first match wins; a message matching none continues the stage).
STAGES = (
    ("capturing the test inputs", "test_capture"),
    ("neighbourhood covariances", "geometry_{side}"),
    ("kernel and diffusion maps", "kernel_{side}"),
    ("alignment and interpolants", "interpolants"),
    ("capturing", "capture"),
    ("sampling", "capture"),
    ("criteria", "criteria"),
    ("reference measures", "reference_measures"),
)


def stage_name(message: str) -> str | None:
    """The stage a progress message starts (see :data:`STAGES`), or ``None``."""
    for text, name in STAGES:
        if text in message:
            side = "b" if message.startswith("network B") else "a"
            return name.format(side=side)
    return None


def measured(stage: Callable[[str], None] | None, peaks: StagePeaks) -> Callable[[str], None]:
    """``stage`` that also starts a new measured stage in ``peaks`` where a message names one."""
    def report(message: str) -> None:
        name = stage_name(message)
        if name is not None and name != peaks.current:
            peaks.stage(name)
        if stage:
            stage(message)
    return report


def within_budget(activations: dict, rows: np.ndarray | None, store: RowStore) -> tuple[dict, RowStore]:
    """A fit's rows ``activations[side] = (rows, neighbourhood rows)`` (``rows`` of them, or
    all) and ``store``, which now counts them: neighbourhood rows beyond its budget are on
    disk, copied there a block at a time where the pairing held them in memory (without a
    budget, nothing moves)."""
    if store.budget is None and rows is None:
        store.resident = sum(part.nbytes for pair in activations.values() for part in pair)
        return activations, store
    out = {}
    for side, (s, nb) in activations.items():
        s = s if rows is None else s[rows]
        store.hold(s.shape)
        store.resident += s.nbytes
        later = factor_bytes((len(s), nb.shape[1], nb.shape[2]))
        if rows is None:
            nb = store.keep(nb, f"neighbourhoods-{side}", later)
        elif store.fits(len(rows) * nb[0].nbytes, later) and not isinstance(nb, DiskRows):
            nb = nb[rows]
            store.resident += nb.nbytes
        else:
            nb = take_rows(nb, rows, store, f"neighbourhoods-{side}", later)
        out[side] = s, nb
    return out, store


__all__ = ["DiskRows", "RowStore", "StagePeaks", "factor_bytes", "held_bytes", "measured", "parse_bytes", "process_peak",
           "within_budget"]
