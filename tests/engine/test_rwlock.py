"""The index lock under a stream of writers: a reader waits for the write in progress when it
arrived, never for writes that queued after it (ordering checks, no timing)."""
from __future__ import annotations

import threading

import pytest

from qstore.index.rwlock import RWLock, WouldBlock


def _until(predicate) -> None:
    done = threading.Event()
    while not predicate():
        done.wait(0.001)


def test_reader_goes_before_a_writer_that_queued_after_it():
    lock = RWLock()
    order: list[str] = []
    first_write = lock.write()
    first_write.__enter__()  # the batch being applied when the reader arrives

    def reader() -> None:
        with lock.read():
            order.append("reader")

    def writer() -> None:
        with lock.write():
            order.append("later write")

    r = threading.Thread(target=reader)
    r.start()
    _until(lambda: lock._waiting_readers == 1)
    w = threading.Thread(target=writer)
    w.start()
    _until(lambda: lock._waiting_writers == 1)
    first_write.__exit__(None, None, None)
    r.join(10)
    w.join(10)
    assert order == ["reader", "later write"]


def test_stream_of_writers_never_starves_a_reader():
    lock = RWLock()
    stop = threading.Event()
    writes = 0

    def stream() -> None:
        nonlocal writes
        while not stop.is_set():
            with lock.write():
                writes += 1

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    _until(lambda: writes > 10)
    seen = []
    for _ in range(50):  # each read gets in while writers keep coming
        with lock.read():
            seen.append(writes)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(seen) == 50


def test_writers_still_exclude_readers_and_each_other():
    lock = RWLock()
    state = {"readers": 0, "writers": 0}
    violations: list[dict[str, int]] = []
    guard = threading.Lock()

    def enter(exclusive: bool) -> None:
        role = "writers" if exclusive else "readers"
        for _ in range(300):
            with lock.write() if exclusive else lock.read():
                with guard:
                    state[role] += 1
                    if state["writers"] > 1 or (state["writers"] and state["readers"]):
                        violations.append(dict(state))
                with guard:
                    state[role] -= 1

    threads = [threading.Thread(target=enter, args=(i % 2 == 0,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert violations == []


def test_non_waiting_read_refuses_while_a_writer_holds_or_waits():
    lock = RWLock()
    with lock.write():
        with pytest.raises(WouldBlock):
            with lock.read(wait=False):
                pass
    with lock.read(wait=False):
        pass


def test_a_read_waits_as_long_as_it_is_told_and_leaves_the_lock_as_it_was():
    lock = RWLock()
    held, release = threading.Event(), threading.Event()

    def writer() -> None:
        with lock.write():
            held.set()
            release.wait(30)

    t = threading.Thread(target=writer)
    t.start()
    held.wait(30)
    gave_up: list[bool] = []  # the writer holds on past the reader's patience
    reader = threading.Thread(target=lambda: gave_up.append(not _read_within(lock, 0.02)))
    reader.start()
    reader.join(10)
    assert gave_up == [True]
    # The reader that gave up no longer counts: the next writer is not held back by it.
    release.set()
    t.join(30)
    assert (lock._waiting_readers, lock._admitted) == (0, 0)  # else the next writer would wait forever
    # A writer that finishes within the wait lets the read through.
    held.clear(), release.clear()
    t = threading.Thread(target=writer)
    t.start()
    held.wait(30)
    got: list[bool] = []
    reader = threading.Thread(target=lambda: got.append(_read_within(lock, 30)))
    reader.start()
    _until(lambda: lock._waiting_readers == 1)
    release.set()
    reader.join(30)
    t.join(30)
    assert got == [True]
    assert (lock._readers, lock._waiting_readers, lock._admitted) == (0, 0, 0)


def _read_within(lock: RWLock, wait: float) -> bool:
    try:
        with lock.read(wait=wait):
            return True
    except WouldBlock:
        return False
