"""Many clients at once: no errors, every acknowledged write readable, exact count."""
from __future__ import annotations

import asyncio
import time

import numpy as np

from qstore_client import AsyncClient

CLIENTS = 32
SECONDS = 3.0
DIM = 16


async def test_32_clients_mixed_upserts_and_queries(server, name):
    async with AsyncClient(server.url, api_key=server.key) as admin:
        col = await admin.create_collection(name, dim=DIM, index={"type": "hnsw", "m": 16, "ef_construction": 64})
    acked: dict[str, np.ndarray] = {}
    queries = 0
    deadline = time.monotonic() + SECONDS

    async def worker(w: int) -> None:
        nonlocal queries
        rng = np.random.default_rng(w)
        async with AsyncClient(server.url, api_key=server.key) as client:
            c = await client.collection(name)
            batch = 0
            while time.monotonic() < deadline:
                if rng.random() < 0.5:
                    n = int(rng.integers(1, 20))
                    ids = [f"w{w}-{batch}-{i}" for i in range(n)]
                    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
                    await c.upsert(ids, vecs, metadata=[{"w": w, "b": batch}] * n)
                    acked.update(zip(ids, vecs))  # only after the server acknowledged
                    batch += 1
                else:
                    hits = await c.query(rng.standard_normal(DIM).astype(np.float32), top_k=5,
                                         filter={"w": w} if rng.random() < 0.3 else None)
                    assert len(hits) <= 5 and all(h.score >= -1.0001 for h in hits)
                    queries += 1

    await asyncio.gather(*(worker(w) for w in range(CLIENTS)))
    assert len(acked) > 100 and queries > 100
    async with AsyncClient(server.url, api_key=server.key) as client:
        c = await client.collection(name)
        assert await c.count() == len(acked)
        ids = sorted(acked)
        for start in range(0, len(ids), 1000):
            chunk = ids[start:start + 1000]
            for rid, rec in zip(chunk, await c.get(chunk)):
                assert rec is not None and np.array_equal(rec.vector, acked[rid]), rid
