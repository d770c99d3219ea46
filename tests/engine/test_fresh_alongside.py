"""A lone query scans a large fresh set on the helper thread while it searches the graph: the
answers are exact over graph + fresh set (numpy brute force is the oracle), with removals and
filters, and the helper really does the scan."""
from __future__ import annotations

import os
import select
import signal
import threading

import numpy as np
import pytest

from qstore.index import vector_index
from qstore.index.spec import IndexSpec
from qstore.index.vector_index import VectorIndex

DIM = 24


@pytest.fixture
def index() -> tuple[VectorIndex, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((900, DIM)).astype(np.float32)
    idx = VectorIndex(DIM, "l2", IndexSpec.parse({"type": "flat"}))
    idx.apply(np.arange(400), x[:400], np.empty(0, np.int64), 1)  # in the graph
    idx.publish(np.arange(400, 900), x[400:], np.empty(0, np.int64))  # fresh: not integrated
    idx.publish(np.empty(0, np.int64), x[:0], np.array([3, 450, 451]))  # removed from both
    assert idx.fresh == 498 >= vector_index.FRESH_ALONGSIDE
    return idx, x


def brute(x: np.ndarray, q: np.ndarray, k: int, live: np.ndarray) -> list[int]:
    d = ((x[live] - q) ** 2).sum(axis=1)
    return live[np.argsort(d, kind="stable")[:k]].tolist()


def test_a_lone_query_is_exact_over_graph_and_fresh_set(index, monkeypatch):
    idx, x = index
    where: list[str] = []
    scan = idx._fresh_top

    def spy(*args, **kwargs):
        where.append(threading.current_thread().name)
        return scan(*args, **kwargs)

    monkeypatch.setattr(idx, "_fresh_top", spy)
    live = np.setdiff1d(np.arange(900), [3, 450, 451])
    qs = np.random.default_rng(4).standard_normal((20, DIM)).astype(np.float32)
    for q in qs:
        _, ids = idx.search(q[None, :], 10)
        assert ids[0].tolist() == brute(x, q, 10, live)
        hidden = live[::5]  # expired records, hidden by the caller
        _, ids = idx.search(q[None, :], 7, exclude=hidden)
        assert ids[0].tolist() == brute(x, q, 7, np.setdiff1d(live, hidden))
        allowed = live[live % 3 == 0]
        _, ids = idx.search(q[None, :], 5, allowed=allowed)
        assert ids[0].tolist() == brute(x, q, 5, allowed)
    assert where and all(name.startswith("qstore-fresh") for name in where)
    where.clear()
    _, ids = idx.search(qs[:4], 10)  # several queries scan on the caller's thread
    assert [row.tolist() for row in ids] == [brute(x, q, 10, live) for q in qs[:4]]
    assert where == [threading.current_thread().name]


def test_a_forked_child_gets_a_helper_of_its_own(index):
    idx, x = index
    q = x[:1] + 0.01
    idx.search(q, 5)  # the parent's helper thread is running
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: without its own helper this search would wait forever
        try:
            os.write(write, np.asarray(idx.search(q, 5)[1][0], np.int64).tobytes())
        finally:
            os._exit(0)
    os.close(write)
    ready, _, _ = select.select([read], [], [], 30)
    if not ready:
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert ready, "the child's search did not return"
    live = np.setdiff1d(np.arange(900), [3, 450, 451])
    assert np.frombuffer(os.read(read, 40), np.int64).tolist() == brute(x, q[0], 5, live)
