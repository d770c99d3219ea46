"""Transparent huge pages for a FAISS graph's large arrays (Linux; elsewhere nothing happens).

An HNSW search reads a few thousand vectors and neighbour lists spread over the whole index,
and on 4 KiB pages most of those reads miss the TLB as well as the caches. On 2 MiB pages raw
FAISS answered 4,200 → 4,560 QPS at 100k vectors (the defaults, one thread). Linux's default
THP mode, "madvise", gives huge pages only to memory that asks (NumPy asks for its arrays of
4 MiB and more; FAISS never does), so we ask (MADV_HUGEPAGE) and have the pages already
written copied into huge ones (MADV_COLLAPSE, Linux 6.1+; older kernels leave that to
khugepaged). Both are advice: the memory's contents never change, so a stale
pointer (the graph grew and moved meanwhile) costs a wasted call at most.

The calls run on one background thread: collapsing copies memory (~0.4 s for 150 MB) and no
caller should wait for it.
"""
from __future__ import annotations

import ctypes
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import faiss

log = logging.getLogger(__name__)

MADV_HUGEPAGE = 14
MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20


def _supported() -> bool:
    if sys.platform != "linux":
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


def _madvise() -> Any:
    fn = ctypes.CDLL(None, use_errno=True).madvise
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    return fn


SUPPORTED = _supported()
_MADVISE = _madvise() if SUPPORTED else None


def _worker() -> None:
    global _WORKER
    _WORKER = ThreadPoolExecutor(1, thread_name_prefix="qstore-hugepages")


_worker()
os.register_at_fork(after_in_child=_worker)


def buffers(index: faiss.Index) -> dict[str, tuple[int, int]]:
    """The arrays a search walks: name -> (address, bytes in use)."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    vectors = []
    if isinstance(inner, faiss.IndexHNSW):
        hnsw = inner.hnsw
        vectors = [("neighbors", hnsw.neighbors, 4), ("offsets", hnsw.offsets, 8)]
        inner = faiss.downcast_index(inner.storage)
    if isinstance(inner, faiss.IndexFlatCodes):
        vectors.append(("codes", inner.codes, 1))
    return {name: (int(v.data()), v.size() * width) for name, v, width in vectors if v.size()}


class HugePages:
    """Per graph: which part of each array has been advised, so each call asks only for the
    part that grew (or all of it, once the array has moved)."""

    def __init__(self) -> None:
        self._advised: dict[str, tuple[int, int]] = {}  # name -> (address, end advised)
        self._latest: faiss.Index | None = None  # the graph to advise (a rebuild replaces it)
        self._queued_on: ThreadPoolExecutor | None = None  # a pass waits there (a forked child has a new one)

    def update(self, index: faiss.Index) -> None:
        """Ask for huge pages for what ``index`` has written since the last call (in the background)."""
        if not SUPPORTED:
            return
        self._latest = index
        if self._queued_on is not _WORKER:
            self._queued_on = _WORKER
            _WORKER.submit(self._advise)

    def _advise(self) -> None:
        self._queued_on = None  # a change from here on queues another pass
        index = self._latest
        for name, (address, nbytes) in buffers(index).items():
            last_address, last_end = self._advised.get(name, (0, 0))
            start = last_end if address == last_address else -(-address // HUGE_PAGE) * HUGE_PAGE
            end = (address + nbytes) // HUGE_PAGE * HUGE_PAGE  # whole pages only: the tail is still growing
            if end > start:
                self._advised[name] = (address, end)
                for advice in (MADV_HUGEPAGE, MADV_COLLAPSE):
                    if _MADVISE(start, end - start, advice) != 0:
                        log.debug("madvise(%s, %d MiB, %d) failed: errno %d", name, (end - start) >> 20,
                                  advice, ctypes.get_errno())
                        break

    def wait(self) -> None:
        """Until the advice asked for so far is done (tests, benchmarks)."""
        _WORKER.submit(lambda: None).result()
