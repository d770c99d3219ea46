"""Reads beside a write stream: a batch's graph work is added a chunk at a time and published in
one step, so searches interleave with it, never see half a batch and still return top_k."""
from __future__ import annotations

import asyncio
import threading

import numpy as np

import qstore
from qstore.index import IndexSpec, VectorIndex
from qstore.index.vector_index import ADD_CHUNK

DIM = 16


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_unpublished_vectors_widen_the_search_and_hold_back_snapshots():
    rng = np.random.default_rng(0)
    index = VectorIndex(DIM, "cosine", IndexSpec.parse({"type": "hnsw", "m": 16, "ef_construction": 64}))
    base = _unit(rng, 300)
    index.apply(np.arange(300), base, np.empty(0, np.int64), seq=1)
    q = base[:1]
    before = index.search(q, 10)[1][0].tolist()

    batch = q + 0.01 * _unit(rng, 3 * ADD_CHUNK)  # new vectors nearer the query than anything stored
    index.add(np.arange(1000, 1000 + len(batch)), batch)
    scores, ids = index.search(q, 10)
    assert ids.shape[1] == 10 + len(batch)  # room for the caller to drop the unpublished ones
    assert (ids[0] >= 1000).sum() > len(batch) // 2
    assert [i for i in ids[0].tolist() if i < 1000][:10] == before

    snap = threading.Thread(target=index.snapshot)
    snap.start()
    snap.join(0.3)
    assert snap.is_alive()  # a snapshot would hold vectors ahead of its sequence number
    index.apply(np.empty(0, np.int64), np.empty((0, DIM), np.float32), np.empty(0, np.int64), seq=2)
    snap.join(30)
    assert not snap.is_alive()
    assert index.search(q, 10)[1].shape == (1, 10)
    assert index.applied_seq == 2


async def test_queries_beside_a_write_stream_return_top_k_of_acknowledged_records(tmp_path):
    rng = np.random.default_rng(1)
    async with await qstore.Database.open(str(tmp_path / "db")) as db:
        col = await db.create_collection("c", dim=DIM, index={"type": "hnsw", "m": 16, "ef_construction": 64})
        await col.upsert([f"base{i}" for i in range(500)], _unit(rng, 500))
        acknowledged = {f"base{i}" for i in range(500)}
        queries = _unit(rng, 50)
        stop = asyncio.Event()

        async def writer() -> None:
            n = 0
            while not stop.is_set():
                ids = [f"w{n + i}" for i in range(4 * ADD_CHUNK)]
                await col.upsert(ids, _unit(rng, len(ids)))
                acknowledged.update(ids)
                n += len(ids)

        task = asyncio.create_task(writer())
        bad = []
        for q in queries:
            hits = await col.query(q, top_k=10)
            if len(hits) != 10 or not {h.id for h in hits} <= acknowledged:
                bad.append([h.id for h in hits])
        stop.set()
        await task
        assert bad == []
