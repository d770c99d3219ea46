"""A graph's large arrays end up on transparent huge pages (Linux, THP mode "madvise")."""
from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from qstore.index import huge_pages
from qstore.index.spec import IndexSpec
from qstore.index.vector_index import VectorIndex


def thp_mode() -> str:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "unavailable"


def collapse_works() -> bool:
    """MADV_COLLAPSE (Linux 6.1+) on a scratch array; without it khugepaged works in its own time."""
    scratch = np.ones(4 * huge_pages.HUGE_PAGE, np.uint8)
    start = -(-scratch.ctypes.data // huge_pages.HUGE_PAGE) * huge_pages.HUGE_PAGE
    return all(huge_pages._MADVISE(start, huge_pages.HUGE_PAGE, advice) == 0
               for advice in (huge_pages.MADV_HUGEPAGE, huge_pages.MADV_COLLAPSE))


pytestmark = pytest.mark.skipif(thp_mode() != "madvise" or not huge_pages.SUPPORTED or not collapse_works(),
                                reason="needs Linux THP in madvise mode (under 'always' every test would pass "
                                       "without our advice) and MADV_COLLAPSE")


def huge_bytes(address: int, nbytes: int) -> int:
    """AnonHugePages of the mappings overlapping [address, address + nbytes)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo < address + nbytes and address < hi
            elif inside and line.startswith("AnonHugePages:"):
                total += int(line.split()[1]) * 1024
    return total


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_graph_arrays_are_collapsed_into_huge_pages(kind: str) -> None:
    rng = np.random.default_rng(0)
    n, dim = 6_000, 384
    spec = IndexSpec(type=kind, m=16, ef_construction=40) if kind == "hnsw" else IndexSpec(type="flat")
    index = VectorIndex(dim, "ip", spec)
    index.apply(np.arange(n, dtype=np.int64), rng.standard_normal((n, dim), dtype=np.float32),
                np.empty(0, np.int64), 1)
    index.pages.wait()
    found = huge_pages.buffers(index._index)
    assert found["codes"][1] == n * dim * 4  # the vectors, as FAISS holds them
    if kind == "hnsw":
        assert set(found) == {"codes", "neighbors", "offsets"}
    address, nbytes = found["codes"]
    whole = (address + nbytes) // huge_pages.HUGE_PAGE * huge_pages.HUGE_PAGE \
        - -(-address // huge_pages.HUGE_PAGE) * huge_pages.HUGE_PAGE
    assert whole >= 2 * huge_pages.HUGE_PAGE
    assert huge_bytes(address, nbytes) >= whole  # every whole 2 MiB page of the vectors


def test_a_restored_graph_and_its_growth_are_advised() -> None:
    rng = np.random.default_rng(1)
    dim = 384
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    flat.add_with_ids(rng.standard_normal((6_000, dim), dtype=np.float32), np.arange(6_000, dtype=np.int64))
    index = VectorIndex(dim, "ip", IndexSpec(type="flat"), index=flat)
    index.pages.wait()
    first = huge_pages.buffers(index._index)["codes"]
    assert huge_bytes(*first) >= 2 * huge_pages.HUGE_PAGE
    index.publish(np.arange(6_000, 12_000, dtype=np.int64), rng.standard_normal((6_000, dim), dtype=np.float32),
                  np.empty(0, np.int64))
    index.integrate(2)
    index.pages.wait()
    address, nbytes = huge_pages.buffers(index._index)["codes"]
    assert nbytes == 12_000 * dim * 4
    assert huge_bytes(address, nbytes) >= (nbytes - 2 * huge_pages.HUGE_PAGE) // huge_pages.HUGE_PAGE \
        * huge_pages.HUGE_PAGE


def test_a_graph_swapped_in_while_a_pass_waits_is_the_one_advised() -> None:
    """A rebuild replaces the graph while a pass for the old one is still queued: the pass
    advises the graph in place when it runs, not the one it was queued for."""
    rng = np.random.default_rng(2)
    dim = 384
    graphs = []
    for _ in range(2):
        flat = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        flat.add_with_ids(rng.standard_normal((4_000, dim), dtype=np.float32), np.arange(4_000, dtype=np.int64))
        graphs.append(flat)
    old, new = graphs
    release = threading.Event()
    huge_pages._WORKER.submit(release.wait)  # hold the worker so both updates find a pass queued
    pages = huge_pages.HugePages()
    pages.update(old)
    pages.update(new)
    release.set()
    pages.wait()
    assert pages._advised["codes"][0] == huge_pages.buffers(new)["codes"][0] != huge_pages.buffers(old)["codes"][0]
