"""Executors: cells on a local Dask cluster of 2 worker processes give what they give in this
process, the shared data reaches each worker once (not once per item), a worker's error
names its item, progress is reported, and a missing extra is named."""

from __future__ import annotations

import copy
import socket
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import threadpoolctl

from equivtest.distributed import NO_DASHBOARD, Dask, InProcess, executor_for
from equivtest.errors import EquivtestError
from equivtest.verdict import decide

# ------------------------------------------------------------------ what the workers run
# Module-level, so that the worker processes import them from this module.


def rows(seed: int = 0, n_inputs: int = 40, per_input: int = 4, width: int = 24):
    """Two networks' rows: columns 0-7 equal, 8-15 permuted, 16-23 an affine map of A's."""
    rng = np.random.default_rng(seed)
    a = np.tanh(rng.normal(size=(n_inputs * per_input, width)) @ rng.normal(size=(width, width)) / 3)
    b = a.copy()
    b[:, 8:16] = b[:, 8:16][:, rng.permutation(8)]
    b[:, 16:24] = b[:, 16:24] @ rng.normal(size=(8, 8)) + 1.0
    return {"a": a, "b": b, "groups": np.repeat(np.arange(n_inputs), per_input)}


CELLS = [(0, 8), (8, 16), (16, 24), (4, 12)]  # identity, permutation, affine, not equivalent


def in_process(cells):
    """The cells' verdicts in this process, with one BLAS thread as on a worker.

    Dask runs each worker thread's tasks with one BLAS thread; with two, OpenBLAS sums in
    another order and the nonlinear rung's errors differ in their last bits."""
    with threadpoolctl.threadpool_limits(limits=1):
        return InProcess().map(verdict_cell, rows(), cells)


def verdict_cell(shared, cols):
    """A sweep-like cell: the ladder's verdict on one column slice of both networks' rows."""
    lo, hi = cols
    return decide(shared["a"][:, lo:hi], shared["b"][:, lo:hi], shared["groups"], seed=0).to_dict()


_UNPICKLED: Counter = Counter()  # token -> times a Counted was unpickled in this process


def _rebuild(token, payload):
    _UNPICKLED[token] += 1
    return Counted(token, payload)


def unpickled(token):
    return _UNPICKLED[token]


class Counted:
    """A payload whose every unpickling is counted in the process that unpickles it."""

    def __init__(self, token, payload):
        self.token, self.payload = token, payload

    def __reduce__(self):
        return _rebuild, (self.token, self.payload)


def column_sum(shared, item):
    """Reads the shared payload, or (for the control) a payload sent with the item."""
    i, carried = item
    payload = (carried or shared).payload
    return float(payload[:, i].sum())


def fails_on_three(shared, item):
    if item == 3:
        raise ValueError(f"item three is bad ({shared})")
    return item


# ------------------------------------------------------------------ the cluster


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason='pip install "equivtest[distributed]"')
    # free ports, no dashboard: several of these may run at once (pytest -n 2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, scheduler_port=0,
                                  dashboard_address=None, scheduler_kwargs=NO_DASHBOARD) as cluster, \
            distributed.Client(cluster) as client:
        yield client


@pytest.fixture(params=["in-process", "dask"])
def executor(request):
    return InProcess() if request.param == "in-process" else executor_for(request.getfixturevalue("client"))


# ------------------------------------------------------------------ tests


def test_verdicts_on_the_cluster_equal_those_in_this_process(client):
    here = in_process(CELLS)
    there = executor_for(client).map(verdict_cell, rows(), CELLS)
    assert there == here
    # the cells differ, so equal lists are not equal by accident
    assert [(v["kind"], v["up_to"]) for v in here] == [
        ("equivalent", "identity"), ("equivalent", "permutation"), ("equivalent", "affine"), ("not_equivalent", None)]


def test_shared_data_reaches_each_worker_once_not_once_per_item(client):
    payload = np.arange(60.0).reshape(6, 10)
    items = [(i, None) for i in range(10)]
    out = executor_for(client).map(column_sum, Counted("shared", payload), items)
    assert out == [float(payload[:, i].sum()) for i in range(10)]
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert client.run(unpickled, "shared") == {w: 1 for w in workers}
    # control: the same payload sent with every item is unpickled once per item
    carried = [(i, Counted("carried", payload)) for i in range(10)]
    assert executor_for(client).map(column_sum, None, carried) == out
    assert sum(client.run(unpickled, "carried").values()) == len(carried)


def test_results_come_back_in_item_order_with_progress(executor):
    seen = []
    items = list(range(7, -1, -1))
    payload = np.arange(16.0).reshape(2, 8)
    out = executor.map(column_sum, Counted(executor.name, payload), [(i, None) for i in items],
                       progress=lambda done, total: seen.append((done, total)))
    assert out == [float(payload[:, i].sum()) for i in items]
    assert seen == [(k, len(items)) for k in range(1, len(items) + 1)]
    assert executor.map(column_sum, None, []) == []


def test_an_error_in_an_item_keeps_its_type_and_names_the_item(executor):
    with pytest.raises(ValueError, match=r"item three is bad \(shared!\)") as info:
        executor.map(fails_on_three, "shared!", [1, 2, 3, 4])
    assert "equivtest: raised while running the item 3" in info.value.__notes__
    assert executor.map(fails_on_three, "shared!", [1, 2]) == [1, 2]  # still usable afterwards


def test_an_address_connects_to_that_scheduler_and_leaves_it_running(client):
    executor = executor_for(client.scheduler.address)
    assert isinstance(executor, Dask) and executor.name == f"dask ({client.scheduler.address})"
    assert executor.map(verdict_cell, rows(), CELLS[:2]) == in_process(CELLS[:2])
    assert len(client.scheduler_info()["workers"]) == 2


def test_an_address_where_no_scheduler_answers_says_so():
    dask = pytest.importorskip("dask", reason='pip install "equivtest[distributed]"')
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(EquivtestError, match=rf"no Dask scheduler answered at tcp://127.0.0.1:{port}"):
            executor_for(f"tcp://127.0.0.1:{port}").map(fails_on_three, None, [1])


def test_local_n_starts_its_own_cluster_and_closes_it():
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("distributed", reason='pip install "equivtest[distributed]"')
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    executor = executor_for("local:1")  # one worker process: the same code as local:N, started faster
    assert executor.name == "dask (local:1)"
    assert executor.map(verdict_cell, rows(), CELLS[:2]) == in_process(CELLS[:2])
    after = {p.pid for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"}
    assert after <= before  # its worker processes are gone


@pytest.mark.parametrize("engine, match", [
    ("local:0", "at least one worker"),
    ("local", "not understood"),
    ("ray://head:10001", "Ray clusters are not supported"),
    ("tcp://scheduler:8786", None),  # an address: accepted, only connected to when used
    (42, "engine must be None"),
])
def test_engines_that_cannot_work_are_refused_with_the_forms_that_can(engine, match):
    if match is None:
        pytest.importorskip("distributed", reason='pip install "equivtest[distributed]"')
        assert executor_for(engine).address == engine
        return
    with pytest.raises(EquivtestError, match=match):
        executor_for(engine)


def test_an_executor_of_ones_own_is_used_as_is():
    assert isinstance(executor_for(None), InProcess)
    mine = InProcess()
    assert executor_for(mine) is mine


def test_a_missing_dask_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    for engine in ("local:2", "tcp://127.0.0.1:8786"):
        with pytest.raises(ImportError, match=r'pip install "equivtest\[distributed\]"'):
            executor_for(engine)


def test_equivtest_imports_and_runs_in_process_without_dask():
    code = ("import sys; sys.modules['distributed'] = sys.modules['dask'] = None\n"
            "from equivtest.distributed import executor_for\n"
            "assert executor_for(None).map(lambda s, i: s + i, 10, [1, 2]) == [11, 12]\n"
            "assert 'distributed' not in [m for m, v in sys.modules.items() if v is not None]")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# ------------------------------------------------------------------ a sweep on the cluster


def test_a_sweep_on_two_local_workers_gives_the_in_process_grid(request):
    sweep = pytest.importorskip("equivtest.sweep", reason="equivtest.sweep is not on this branch").sweep
    torch = pytest.importorskip("torch")
    from equivtest import NetworkPair

    client = request.getfixturevalue("client")

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 3)).double().eval()
    changed = copy.deepcopy(net)
    with torch.no_grad():  # the second linear layer moved: layers 0-1 the same, 2-4 changed
        changed[2].weight.add_(0.3 * torch.randn(changed[2].weight.shape, dtype=torch.float64,
                                                 generator=torch.Generator().manual_seed(1)))
    pair = NetworkPair(net, changed, "0", "0", names=("base", "changed"))
    x = np.random.default_rng(0).normal(size=(400, 4))
    layers = ["1", "3"]
    seen = []
    with threadpoolctl.threadpool_limits(limits=1):  # one BLAS thread, as on a worker (see in_process)
        here = sweep(pair, x, layers, layers, mode="all")
    there = sweep(pair, x, layers, layers, mode="all", engine=client,
                  progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert there.to_dict() == here.to_dict()
    assert [s for s in seen if s[0] == "fit"] == [("fit", k, 4) for k in range(1, 5)]
    kinds = {(c.layer_a, c.layer_b): c.kind for c in here.cells}
    assert kinds[("1", "1")] == "equivalent" and kinds[("3", "3")] != kinds[("1", "1")]  # not one verdict everywhere
