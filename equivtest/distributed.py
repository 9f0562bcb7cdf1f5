"""Where independent pieces of work run: in this process, or on a Dask distributed cluster.

A sweep's cells (one ladder fit per layer pair) are independent. They run through an
*executor*, an object with a ``name`` and one method::

    executor.map(fn, shared, items, progress=None) -> list

``fn(shared, item)`` is called once per item; ``shared`` holds what every call needs (the
captured rows of both networks, the pair) and reaches each worker once, not once per
item. ``progress(done, total)``, when given, is called in the caller's process as items
finish. The results come back in the order of ``items``. When ``fn`` raises, the
exception keeps its type and message and gains a note naming the item it came from
(``exc.__notes__``, shown in tracebacks); the items still running are cancelled.

:func:`executor_for` turns what a user passes as ``engine=`` into an executor:

- ``None``: this process (:class:`InProcess`);
- a ``distributed.Client``: that client's cluster, left open afterwards;
- an address such as ``"tcp://10.0.0.5:8786"``: a client connected to that scheduler for
  each ``map``, closed afterwards (the cluster is not);
- ``"local:N"``: a fresh local cluster of ``N`` worker processes (one thread each),
  started for each ``map`` and closed afterwards;
- an object that already has ``name`` and ``map``: itself.

On Dask, ``shared`` is scattered once with ``broadcast=True`` (one copy in each worker's
memory) and every task refers to it; ``fn``, ``shared``, the items and the results travel
by pickle between this process and the workers it was pointed at, so they must be
picklable, and only trusted clusters should be used. Dask is imported on first use:
``pip install "equivtest[distributed]"``.
"""

from __future__ import annotations

import importlib
import reprlib
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .errors import EquivtestError

EXTRA = 'pip install "equivtest[distributed]"'
_LOCAL = re.compile(r"local:(\d+)")
# A local cluster's scheduler without its dashboard still serves HTTP (health, metrics),
# by default on port 8787; a free port on loopback instead, so several can run at once.
NO_DASHBOARD = {"dashboard_address": "127.0.0.1:0"}
_ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss|inproc)://\S+")  # the schemes of Dask's comms


class InProcess:
    """Every item in this process, one after the other."""

    name = "in-process"

    def map(self, fn: Callable[[Any, Any], Any], shared: Any, items: Sequence, progress=None) -> list:
        out = []
        for i, item in enumerate(items):
            try:
                out.append(fn(shared, item))
            except Exception as exc:
                _name_item(exc, item)
                raise
            if progress is not None:
                progress(i + 1, len(items))
        return out


class Dask:
    """Every item as a task on a Dask distributed cluster (see the module's docstring).

    Exactly one of ``client`` (a ``distributed.Client``, used as is and left open),
    ``address`` (a scheduler's address, connected to for each ``map``) or ``local_workers``
    (a local cluster of that many worker processes, started and closed for each ``map``).
    """

    def __init__(self, client: Any = None, address: str | None = None, local_workers: int | None = None):
        given = [x is not None for x in (client, address, local_workers)]
        if sum(given) != 1:
            raise EquivtestError("Dask(...) takes exactly one of client=, address= or local_workers=")
        if local_workers is not None and local_workers < 1:
            raise EquivtestError(f"a local cluster needs at least one worker, got local:{local_workers}")
        self.client, self.address, self.local_workers = client, address, local_workers
        where = address or (f"local:{local_workers}" if local_workers else f"client of {_scheduler_address(client)}")
        self.name = f"dask ({where})"

    def __repr__(self) -> str:
        return f"<equivtest executor {self.name}>"

    def map(self, fn: Callable[[Any, Any], Any], shared: Any, items: Sequence, progress=None) -> list:
        items = list(items)
        if not items:
            return []
        with self._connected() as client:
            return _map_on(client, fn, shared, items, progress)

    @contextmanager
    def _connected(self) -> Iterator[Any]:
        if self.client is not None:
            yield self.client
            return
        dist = _import_distributed()
        if self.address is not None:
            with _connect(dist, self.address) as client:
                yield client
            return
        with dist.LocalCluster(n_workers=self.local_workers, threads_per_worker=1, processes=True, scheduler_port=0,
                               dashboard_address=None, scheduler_kwargs=NO_DASHBOARD) as cluster, \
                dist.Client(cluster) as client:
            yield client


def _connect(dist, address: str):
    try:
        return dist.Client(address)
    except (OSError, TimeoutError) as exc:
        raise EquivtestError(f"no Dask scheduler answered at {address} ({exc}); start one (`dask scheduler`) "
                             "or give the address it prints, or use 'local:N' for a cluster on this machine") from exc


def _map_on(client, fn, shared, items: list, progress) -> list:
    """Scatter ``shared`` to every worker once, run one task per item, gather in item order."""
    dist = _import_distributed()
    # A one-element list: scatter ships the object whole (a dict would be split by key);
    # hash=False: no hashing of gigabytes of captures to name them.
    [shared_ref] = client.scatter([shared], broadcast=True, hash=False)
    futures = [client.submit(fn, shared_ref, item, pure=False) for item in items]
    index = {f.key: i for i, f in enumerate(futures)}
    out: list = [None] * len(items)
    try:
        for done, future in enumerate(dist.as_completed(futures), start=1):
            i = index[future.key]
            try:
                out[i] = future.result()
            except Exception as exc:
                _name_item(exc, items[i])
                raise
            if progress is not None:
                progress(done, len(items))
    finally:
        client.cancel(futures)
        shared_ref.release()
    return out


def _name_item(exc: BaseException, item: Any) -> None:
    """Add a note naming the item to an exception raised by ``fn`` (type and message kept)."""
    note = f"equivtest: raised while running the item {reprlib.repr(item)}"
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:  # Python 3.10: no add_note, same attribute
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]


def _import_distributed():
    try:
        return importlib.import_module("distributed")
    except ImportError as exc:
        raise ImportError(f"running on a Dask cluster needs dask's distributed package, which is not installed; "
                          f"install the extra: {EXTRA}") from exc


def _is_dask_client(engine: Any) -> bool:
    cls = type(engine)
    return cls.__module__.split(".")[0] == "distributed" and any(c.__name__ == "Client" for c in cls.__mro__)


def executor_for(engine: Any = None):
    """The executor for ``engine`` (see the module's docstring for what it may be)."""
    if engine is None:
        return InProcess()
    if isinstance(engine, str):
        local = _LOCAL.fullmatch(engine.strip())
        if local:
            _import_distributed()
            return Dask(local_workers=int(local.group(1)))
        if _ADDRESS.fullmatch(engine.strip()):
            _import_distributed()
            return Dask(address=engine.strip())
        raise EquivtestError(f"engine {engine!r} is not understood: give a Dask scheduler's address "
                             "('tcp://host:port'), or 'local:N' for a local cluster of N worker processes "
                             "(Ray clusters are not supported)")
    if _is_dask_client(engine):
        return Dask(client=engine)
    if callable(getattr(engine, "map", None)) and getattr(engine, "name", None):
        return engine
    raise EquivtestError(f"engine must be None (run in this process), a distributed.Client, a scheduler's address "
                         f"('tcp://host:port') or 'local:N', got {type(engine).__name__}")


def _scheduler_address(client: Any) -> str:
    return getattr(getattr(client, "scheduler", None), "address", None) or "an unknown scheduler"
