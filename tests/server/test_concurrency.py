"""Many clients at once: no errors, every acknowledged write readable, exact count."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import numpy as np
from aiohttp.test_utils import TestServer

from qstore_client import AsyncClient, InvalidArgument
from qstore_server import ServerConfig, create_app

CLIENTS = 32
SECONDS = 3.0
DIM = 16


async def test_32_clients_mixed_upserts_and_queries(server, name):
    async with AsyncClient(server.url, api_key=server.key) as admin:
        await admin.create_collection(name, dim=DIM, index={"type": "hnsw", "m": 16, "ef_construction": 64})
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


async def test_concurrent_queries_get_their_own_answers(tmp_path):
    """Queries that pile up (the engine searches them together on its reader threads) each get
    exactly their own answer, and a bad one its own error."""
    app = create_app(ServerConfig(data_dir=tmp_path / "data"))
    x = np.random.default_rng(3).standard_normal((2000, DIM)).astype(np.float32)
    qs = np.random.default_rng(4).standard_normal((96, DIM)).astype(np.float32)
    async with TestServer(app, host="127.0.0.1") as srv:
        async with AsyncClient(str(srv.make_url("")).rstrip("/")) as client:
            col = await client.create_collection("b", dim=DIM, index={"type": "flat"})
            await col.upsert([str(i) for i in range(len(x))], x, metadata=[{"even": i % 2 == 0} for i in range(len(x))])
            flt = [None, {"even": True}]
            expected = [await col.query(q, top_k=5, filter=flt[i % 2]) for i, q in enumerate(qs)]

            async def one(i: int):
                if i % 17 == 16:
                    return await col.query(np.ones(DIM + 1), top_k=5)
                return await col.query(qs[i], top_k=5, filter=flt[i % 2])

            results = await asyncio.gather(*(one(i) for i in range(len(qs))), return_exceptions=True)
    for i, got in enumerate(results):
        if i % 17 == 16:
            assert isinstance(got, InvalidArgument) and got.code == "dimension_mismatch"
        else:
            assert got == expected[i], i


async def test_concurrent_queries_with_explicit_nulls(tmp_path):
    """The console sends every field, unused ones as null ("context": null, "tunneling": null):
    concurrent queries sent so each get their own answer."""
    app = create_app(ServerConfig(data_dir=tmp_path / "data"))
    x = np.random.default_rng(5).standard_normal((2000, DIM)).astype(np.float32)
    qs = np.random.default_rng(6).standard_normal((64, DIM)).astype(np.float32)
    nulls = {"filter": None, "context": None, "tunneling": None, "seed": None, "ef": None, "per_region": None}
    async with TestServer(app, host="127.0.0.1") as srv:
        async with AsyncClient(str(srv.make_url("")).rstrip("/")) as client:
            col = await client.create_collection("b", dim=DIM, index={"type": "flat"})
            await col.upsert([str(i) for i in range(len(x))], x)
            # A superposed record sends every query to a reader thread: later ones pile up behind it.
            await col.superpose("s", [(x[0], "a", 0.6), (x[1], "b", 0.8)])
            expected = [[h.id for h in await col.query(q, top_k=5)] for q in qs]
            async with aiohttp.ClientSession() as http:

                async def one(i: int) -> list[str]:
                    async with http.post(srv.make_url("/v1/collections/b/query"),
                                         json={"vector": qs[i].tolist(), "top_k": 5, **nulls}) as reply:
                        assert reply.status == 200, await reply.text()
                        return [h["id"] for h in (await reply.json())["result"]]

                results = await asyncio.gather(*(one(i) for i in range(len(qs))))
    assert results == expected
