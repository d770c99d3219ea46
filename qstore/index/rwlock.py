"""A writer-preferring readers-writer lock: FAISS searches share, mutations exclude."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class WouldBlock(Exception):
    """A non-waiting ``read(wait=False)`` found a writer holding or awaiting the lock."""


class RWLock:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._waiting_writers = 0

    def read(self, wait: bool = True) -> _Shared:
        """``with lock.read():`` shares the lock; ``read(wait=False)`` raises WouldBlock
        instead of waiting for a writer. (A class, not a generator: searches take it per call.)"""
        return _Shared(self, wait)

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writing or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class _Shared:
    __slots__ = ("lock", "wait")

    def __init__(self, lock: RWLock, wait: bool):
        self.lock, self.wait = lock, wait

    def __enter__(self) -> None:
        lock = self.lock
        with lock._cond:
            while lock._writing or lock._waiting_writers:
                if not self.wait:
                    raise WouldBlock
                lock._cond.wait()
            lock._readers += 1

    def __exit__(self, *exc: object) -> None:
        lock = self.lock
        with lock._cond:
            lock._readers -= 1
            if not lock._readers and lock._waiting_writers:
                lock._cond.notify_all()
