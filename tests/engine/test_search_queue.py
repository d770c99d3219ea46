"""The search queue: every caller gets its own answer, chunks never mix top_k, an error reaches
the callers of its chunk only (an exception given as one caller's answer, that caller only),
other work on the pool gets its turn, and a shut-down pool fails what is queued instead of
leaving it waiting."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qstore import search_queue
from qstore.search_queue import SearchQueue


def top_k(qs: np.ndarray, k: int) -> list[list[float]]:
    """A real search over a fixed table: the k largest inner products of each query."""
    table = np.arange(40, dtype=np.float64).reshape(20, 2)
    return [sorted((table @ q).tolist(), reverse=True)[:k] for q in qs]


async def test_every_caller_gets_its_own_answer_and_chunks_keep_one_top_k():
    chunks: list[tuple[int, int]] = []

    def search(qs, k):
        chunks.append((len(qs), k))
        return top_k(qs, k)

    with ThreadPoolExecutor(2) as pool:
        queue = SearchQueue(pool, 2, search)
        loop = asyncio.get_running_loop()
        rng = np.random.default_rng(0)
        items = [(rng.standard_normal((1, 2)), int(k), loop.create_future()) for k in rng.integers(1, 4, 200)]
        for i in range(0, 200, 7):  # arriving in bursts
            queue.put(items[i:i + 7])
            await asyncio.sleep(0)
        got = await asyncio.gather(*(f for _, _, f in items))
        for _ in range(500):  # the drainers retire on the loop, after their last answers
            if not queue.busy:
                break
            await asyncio.sleep(0.01)
    assert got == [top_k(q, k)[0] for q, k, _ in items]
    assert sum(n for n, _ in chunks) == 200 and max(n for n, _ in chunks) > 1
    assert not queue.busy


async def test_an_error_reaches_its_chunk_and_the_queue_goes_on():
    def search(qs, k):
        if k == 2:
            raise ValueError("no k=2 here")
        return top_k(qs, k)

    with ThreadPoolExecutor(1) as pool:
        queue = SearchQueue(pool, 1, search)
        loop = asyncio.get_running_loop()
        items = [(np.ones((1, 2)), k, loop.create_future()) for k in (1, 2, 2, 3)]
        queue.put(items)
        results = await asyncio.gather(*(f for _, _, f in items), return_exceptions=True)
    assert results[0] == top_k(np.ones((1, 2)), 1)[0] and results[3] == top_k(np.ones((1, 2)), 3)[0]
    assert all(isinstance(r, ValueError) for r in results[1:3])


async def test_an_answer_that_is_an_exception_reaches_its_caller_only():
    def search(qs, k):  # as a collection answers a chunk holding one bad row
        return [ValueError("bad row") if q[0] < 0 else top_k(q[None], k)[0] for q in qs]

    with ThreadPoolExecutor(1) as pool:
        queue = SearchQueue(pool, 1, search)
        loop = asyncio.get_running_loop()
        items = [(np.full((1, 2), v), 2, loop.create_future()) for v in (1.0, -1.0, 2.0)]
        queue.put(items)
        results = await asyncio.gather(*(f for _, _, f in items), return_exceptions=True)
    assert results[0] == top_k(items[0][0], 2)[0] and results[2] == top_k(items[2][0], 2)[0]
    assert isinstance(results[1], ValueError)


async def test_a_cancelled_caller_is_skipped_and_the_others_answered():
    gate = threading.Event()

    def search(qs, k):
        gate.wait(5)
        return top_k(qs, k)

    with ThreadPoolExecutor(1) as pool:
        queue = SearchQueue(pool, 1, search)
        loop = asyncio.get_running_loop()
        items = [(np.full((1, 2), i), 2, loop.create_future()) for i in range(3)]
        queue.put(items)
        items[1][2].cancel()
        gate.set()
        assert await items[2][2] == top_k(items[2][0], 2)[0]
        assert items[1][2].cancelled()


async def test_other_work_on_the_pool_gets_its_turn(monkeypatch):
    monkeypatch.setattr(search_queue, "CHUNK", 1)
    order: list[str] = []

    def search(qs, k):
        order.append("search")
        return top_k(qs, k)

    with ThreadPoolExecutor(1) as pool:
        queue = SearchQueue(pool, 1, search)
        loop = asyncio.get_running_loop()
        items = [(np.ones((1, 2)), 1, loop.create_future()) for _ in range(3 * search_queue.ROUNDS)]
        queue.put(items)
        other = loop.run_in_executor(pool, order.append, "other")
        await asyncio.gather(other, *(f for _, _, f in items))
    # the drainer searched ROUNDS chunks, then queued again behind the other job
    assert order.index("other") == search_queue.ROUNDS


async def test_a_shut_down_pool_fails_what_is_queued():
    pool = ThreadPoolExecutor(1)
    pool.shutdown()
    queue = SearchQueue(pool, 2, top_k)
    loop = asyncio.get_running_loop()
    items = [(np.ones((1, 2)), 1, loop.create_future()) for _ in range(3)]
    queue.put(items)
    for _, _, future in items:
        with pytest.raises(RuntimeError):
            await future
    assert not queue.busy
