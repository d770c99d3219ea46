"""A write is answered once it is committed and visible; its graph work runs afterwards on the
applier thread, which holds writers back when it falls behind. Cheap searches never stall the
event loop."""
import asyncio
import threading
import time

from qstore.storage.environment import MAX_APPLY_LAG
from tests.engine.test_crud import unit


class Held:
    """Hold a collection's summary lock from another thread: the applier waits for it."""

    def __init__(self, lock, mode: str):
        self.lock, self.mode = lock, mode
        self.held, self.release = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._hold)

    def _hold(self) -> None:
        with getattr(self.lock, self.mode)():
            self.held.set()
            self.release.wait(10)

    def __enter__(self) -> "Held":
        self.thread.start()
        assert self.held.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join()


async def test_a_write_is_visible_when_answered_even_while_its_publication_waits(db, rng):
    """Publication (summaries and the fresh set) happens in the writer thread before the answer:
    a reader holding the summaries holds the answer back, never the other way round."""
    col = await db.create_collection("r", dim=16, index={"type": "hnsw", "m": 16})
    X = unit(rng, 40, 16)
    await col.upsert([str(i) for i in range(20)], X[:20])
    with Held(col._lock, "read") as hold:
        write = asyncio.ensure_future(col.upsert(["new"], X[30:31]))
        await asyncio.wait([write], timeout=0.3)
        assert not write.done()  # committed, but not answered before it is visible
        hold.release.set()
        await write
    assert [h.id for h in await col.query(X[30], top_k=1)] == ["new"]
    assert await col.count() == 21 and col.index.size == 21


async def test_writers_wait_when_indexing_falls_behind(db, rng):
    col = await db.create_collection("b", dim=16, index={"type": "flat"})
    X = unit(rng, 10, 16)
    release = threading.Event()
    await db._storage.write(lambda ctx: ctx.apply_later(release.wait))  # the applier is busy
    try:
        writes = []
        for i in range(6):  # one batch each
            writes.append(asyncio.ensure_future(col.upsert([f"w{i}"], X[i:i + 1])))
            await asyncio.wait(writes[-1:], timeout=0.2)
        # MAX_APPLY_LAG batches queued behind the busy applier, the rest held back
        assert [w.done() for w in writes] == [True] * MAX_APPLY_LAG + [False] * (6 - MAX_APPLY_LAG)
        # what was answered is searchable, though none of it has been indexed yet (the next
        # batch is committed too, and its answer waits for room in the applier's queue)
        found = {h.id for h in await col.query(X[0], top_k=6)}
        assert {f"w{i}" for i in range(MAX_APPLY_LAG)} <= found <= {f"w{i}" for i in range(MAX_APPLY_LAG + 1)}
    finally:
        release.set()
    assert await asyncio.gather(*writes) == [1] * 6
    assert await col.count() == 6
    assert {h.id for h in await col.query(X[0], top_k=6)} == {f"w{i}" for i in range(6)}


async def test_query_never_waits_for_a_writer_on_the_event_loop(db, rng):
    """Cheap searches run on the loop, but one that meets a write in progress goes to a reader
    thread: the loop keeps ticking and the answer is still exact."""
    col = await db.create_collection("w", dim=16, index={"type": "hnsw", "m": 16})
    X = unit(rng, 200, 16)
    await col.upsert([str(i) for i in range(200)], X)
    assert [h.id for h in await col.query(X[3], top_k=1)] == ["3"]  # inline, uncontended
    with Held(col._lock, "write") as hold:
        asyncio.get_running_loop().call_later(0.3, hold.release.set)
        ticks, start = 0, time.perf_counter()
        task = asyncio.ensure_future(col.query(X[5], top_k=1))
        while not task.done():
            await asyncio.sleep(0.01)
            ticks += 1
    assert [h.id for h in task.result()] == ["5"]
    assert time.perf_counter() - start >= 0.25 and ticks >= 10  # it waited, the loop did not
