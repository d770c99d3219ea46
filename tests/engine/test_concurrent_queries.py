"""Plain queries from concurrent callers share searches (on every reader thread), every caller
gets exactly its own answer, callers take turns, and a cancelled caller leaves the others answered."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from qstore import collection

N, DIM = 2000, 16


@pytest.fixture
async def col(db):
    c = await db.create_collection("c", dim=DIM, index={"type": "hnsw", "m": 16})
    X = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    await c.upsert([f"r{i}" for i in range(N)], X)
    await db._storage.settle()
    return c


def queries(n: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((n, DIM)).astype(np.float32)


def spy_searches(col) -> list[tuple[int, int]]:
    """Record each engine search call: how many queries it carried, on which thread (a lone
    plain query takes its own path, ``_plain_search``)."""
    calls: list[tuple[int, int]] = []
    for name in ("_search_sync", "_plain_search"):
        search = getattr(col, name)

        def counting(q, *args, _search=search, **kwargs):
            calls.append((len(q), threading.get_ident()))
            return _search(q, *args, **kwargs)

        setattr(col, name, counting)
    return calls


async def test_concurrent_callers_share_searches_and_get_their_own_answers(col):
    qs = queries(16)
    alone = [await col.query(q, top_k=5) for q in qs]
    calls = spy_searches(col)

    async def caller(i: int) -> list:
        return [await col.query(qs[i], top_k=5) for _ in range(4)]

    together = await asyncio.gather(*(caller(i) for i in range(16)))
    assert together == [[a] * 4 for a in alone]
    sizes = [n for n, _ in calls]
    assert sum(sizes) == 64 and len(sizes) <= 64 // 2  # searches carried several callers
    # on the reader threads (which of them is the scheduler's business: these searches take
    # microseconds); on the event loop's own only until the crowd is noticed
    loop_thread = threading.get_ident()
    assert {t for _, t in calls} - {loop_thread}
    assert sum(n for n, t in calls if t == loop_thread) <= collection.GATHER_EVERY
    calls.clear()
    assert await col.query_batch(qs, top_k=5) == alone
    assert sum(n for n, _ in calls) == 16 and max(n for n, _ in calls) > 1
    assert loop_thread not in {t for _, t in calls}


async def test_callers_with_different_top_k_are_answered_apart(col):
    qs = queries(4)
    ks = [1, 3, 1, 3]
    want = [await col.query(q, top_k=k) for q, k in zip(qs, ks)]
    got = await asyncio.gather(*(col.query(q, top_k=k) for q, k in zip(qs, ks)))
    assert got == want and [len(h) for h in got] == ks


async def test_a_caller_in_a_loop_does_not_starve_the_others(col):
    qs = queries(30)
    done: list[str] = []

    async def caller(name: str) -> None:
        for q in qs:
            await col.query(q, top_k=3)
            done.append(name)

    await asyncio.gather(caller("a"), caller("b"))
    # taking turns: neither runs more than a few queries in a row while the other waits
    runs = "".join(done).replace("ab", "a b").replace("ba", "b a").split()
    assert max(len(run) for run in runs[:-1]) <= collection.GATHER_EVERY + 2, "".join(done)


async def test_a_cancelled_caller_leaves_the_callers_that_joined_it_answered(col):
    qs = queries(3)
    want = [await col.query(q, top_k=4) for q in qs]
    await asyncio.gather(*(col.query(q, top_k=4) for q in queries(16)))  # a crowd: the next query gathers
    tasks = [asyncio.get_running_loop().create_task(col.query(q, top_k=4)) for q in qs]
    await asyncio.sleep(0)   # the first is gathering, the others join it
    tasks[0].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)
    assert results[1:] == want[1:]
    assert not col._gathering
