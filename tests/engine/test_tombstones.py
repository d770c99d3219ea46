import numpy as np

import qstore


async def test_hnsw_rebuilds_past_20_percent_tombstones(tmp_path, rng):
    X = rng.normal(size=(2000, 16)).astype(np.float32)
    path = str(tmp_path / "t")
    async with await qstore.Database.open(path) as db:
        col = await db.create_collection("t", dim=16, index={"type": "hnsw", "m": 16})
        await col.upsert([str(i) for i in range(2000)], X)
        await db._storage.settle()  # all in the graph (a vector deleted while fresh leaves no tombstone)
        await col.delete([str(i) for i in range(300)])  # 15%: tombstoned, not rebuilt
        await db._storage.settle()
        assert col.index.tombstones == 300 and col.index.rebuilds == 0
        assert all(int(h.id) >= 300 for h in await col.query(X[5], top_k=20))
        await col.delete([str(i) for i in range(300, 500)])  # 25% > 20%: background rebuild
        await db._storage.settle()
        col.index.wait_for_rebuild(30)
        assert col.index.rebuilds == 1 and col.index.tombstones == 0
        assert col.index.size == 1500 == await col.count()
        assert (await col.query(X[1000], top_k=1))[0].id == "1000"
        assert all(int(h.id) >= 500 for h in await col.query(X[100], top_k=50))
        # updates while tombstoned also leave tombstones (a new internal id per write)
        await col.upsert(["1000"], X[1:2])
        assert (await col.query(X[1], top_k=1))[0].id == "1000"
    async with await qstore.Database.open(path) as db:
        col = await db.collection("t")
        assert await col.count() == 1500 and col.index.size == 1500
        assert (await col.query(X[1], top_k=1))[0].id == "1000"
