"""Plain queries from concurrent callers, searched on the reader threads without a barrier.

Callers queue (vector, top_k, future); up to one drainer per reader thread takes a chunk of
queued queries with the same top_k, searches it, answers its callers at once and takes the
next. Nobody waits for a whole group: a thread that finishes early takes more, and while the
event loop hands answers back and takes new queries the threads go on searching (grouping
callers and splitting each group between the threads left 16 callers using 1.4 of 2 cores).
"""
from __future__ import annotations

import asyncio
import collections
import logging
import math
import threading
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CHUNK = 16  # queries a drainer takes at most at a time (half the queue, while there are two threads)
ROUNDS = 8  # chunks a drainer searches before it goes to the back of the pool's queue, so other reads get their turn

Search = Callable[[np.ndarray, int], list[Any]]  # (queries, top_k) -> one answer (or exception) per query
Item = tuple[np.ndarray, int, "asyncio.Future[Any]"]


class SearchQueue:
    def __init__(self, pool: Executor, threads: int, search: Search):
        self._pool, self._threads, self._search = pool, threads, search
        self._items: collections.deque[Item] = collections.deque()
        self._lock = threading.Lock()
        self._drainers = 0

    @property
    def busy(self) -> bool:
        """Searches are queued, in flight, or their answers not yet handed over: a new query
        should queue behind them (it would otherwise search alone on the loop while the others
        are woken, and take several turns before they get one)."""
        return self._drainers > 0

    def put(self, items: list[Item]) -> None:
        """Queue queries (on the event loop); their futures get the answers."""
        with self._lock:
            self._items.extend(items)
        self._staff(asyncio.get_running_loop())

    def _staff(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start drainers for the queued queries, up to one per thread."""
        with self._lock:
            start = max(0, min(self._threads, len(self._items)) - self._drainers)
            self._drainers += start
        for _ in range(start):
            self._submit(loop)

    def _submit(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self._pool.submit(self._drain, loop)
        except RuntimeError as exc:  # the pool is shut down: the last drainer fails what is queued
            with self._lock:
                self._drainers -= 1
                stranded = [] if self._drainers else list(self._items)
                if stranded:
                    self._items.clear()
            _call(loop, _settle, [f for _, _, f in stranded], exc)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        for _ in range(ROUNDS):
            with self._lock:
                chunk: list[Item] = []
                if self._items:
                    k = self._items[0][1]
                    n = min(CHUNK, math.ceil(len(self._items) / self._threads))
                    while self._items and len(chunk) < n and self._items[0][1] == k:
                        chunk.append(self._items.popleft())
            if not chunk:  # retired on the loop, after the answers posted before
                _call(loop, self._retire, loop)
                return
            try:
                result: list[Any] | BaseException = self._search(np.concatenate([q for q, _, _ in chunk]), k)
            except Exception as exc:  # each caller gets the error; the queue goes on
                result = exc
            _call(loop, _settle, [f for _, _, f in chunk], result)
        self._submit(loop)  # still work: queue again behind whatever else waits for the pool

    def _retire(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._drainers -= 1
        self._staff(loop)  # queries put since the drainer found the queue empty


def _call(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        log.debug("search answers dropped: the event loop is closed")


def _settle(futures: list[asyncio.Future[Any]], result: list[Any] | BaseException) -> None:
    for i, future in enumerate(futures):
        if future.done():  # its caller was cancelled
            continue
        answer = result if isinstance(result, BaseException) else result[i]
        if isinstance(answer, BaseException):
            future.set_exception(answer)
        else:
            future.set_result(answer)
