"""A phase-fair readers-writer lock: FAISS searches share, mutations exclude.

Writers are preferred (a waiting writer holds back new readers), but readers that waited
through a write section go in before the next writer. Under a steady stream of writes a
reader therefore waits for at most the write in progress when it arrived, not for the stream.
Writers go in arrival order: one that takes the lock back to back (the graph builder, a chunk
at a time) cannot starve another (a commit publishing its vectors).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class WouldBlock(Exception):
    """``read(wait=seconds)`` found a writer holding or awaiting the lock and gave up waiting."""


class RWLock:
    def __init__(self) -> None:
        # Readers take the condition's mutex directly: a Condition's own ``with`` adds two
        # Python frames to every search's way in and out.
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0
        self._waiting_readers = 0
        self._admitted = 0  # readers that waited through the last write; they go before the next
        self._writes = 0  # write sections finished
        self._tickets = 0  # writers' arrival order: the next ticket to hand out

    def read(self, wait: float = math.inf) -> _Shared:
        """``with lock.read():`` shares the lock; ``read(wait=seconds)`` raises WouldBlock
        once it has waited that long for a writer (``0``: at once). (A class, not a generator:
        searches take it per call.)"""
        return _Shared(self, wait)

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            ticket = self._tickets
            self._tickets += 1
            self._waiting_writers += 1
            while self._writing or self._readers or self._admitted or ticket != self._writes:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._writes += 1
                self._admitted = self._waiting_readers
                self._cond.notify_all()


class _Shared:
    __slots__ = ("lock", "wait")

    def __init__(self, lock: RWLock, wait: float):
        self.lock, self.wait = lock, wait

    def __enter__(self) -> None:
        lock = self.lock
        with lock._mutex:
            if lock._writing or lock._waiting_writers:
                if not self.wait:
                    raise WouldBlock
                arrived = lock._writes
                deadline = time.monotonic() + self.wait
                lock._waiting_readers += 1
                try:
                    while lock._writing or (lock._waiting_writers and lock._writes == arrived):
                        left = deadline - time.monotonic()
                        if left <= 0:  # still the write we arrived behind: admitted readers never time out
                            raise WouldBlock
                        lock._cond.wait(None if left == math.inf else left)
                finally:
                    lock._waiting_readers -= 1
                    if lock._writes != arrived:
                        lock._admitted -= 1
            lock._readers += 1

    def __exit__(self, *exc: object) -> None:
        lock = self.lock
        with lock._mutex:
            lock._readers -= 1
            if not lock._readers and lock._waiting_writers:
                lock._cond.notify_all()
