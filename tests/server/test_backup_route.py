"""POST /v1/admin/backup: a consistent copy of the served database while it takes writes;
admin scope only; the copy restores to the same records."""
from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

import qstore
from qstore_client import AlreadyExists, AsyncClient, Forbidden, InvalidArgument


async def test_backup_route_copies_a_live_server(server, name):
    X = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    async with AsyncClient(server.url, api_key=server.key) as client:
        col = await client.create_collection(name, dim=8, index={"type": "hnsw"})
        await col.upsert([f"r{i}" for i in range(300)], X, [{"i": i} for i in range(300)])
        await col.superpose("s", [(X[0], "a", 0.6), (X[1], "b", 0.8j)])
        writes = asyncio.create_task(col.upsert([f"late{i}" for i in range(100)], X[:100]))
        manifest = await client.backup(name)
        await writes
        assert manifest["last_seq"] > 0 and "lmdb/data.mdb" in manifest["files"]
        with pytest.raises(AlreadyExists):
            await client.backup(name)
        with pytest.raises(InvalidArgument):
            await client.backup("../escape")
    async with AsyncClient(server.url, api_key=server.read_key) as reader:
        with pytest.raises(Forbidden):
            await reader.backup(name + "-r")
    bk = Path(server.data_dir) / "backups" / name
    restored = await qstore.Database.restore(str(bk), str(Path(server.data_dir).parent / f"restored-{name}"),
                                             sweep_interval=None)
    async with restored:
        col = await restored.collection(name)
        assert 300 + 1 <= await col.count() <= 300 + 1 + 100
        s = (await col.get(["s"]))[0]
        assert [b.context for b in s.branches] == ["a", "b"] and s.branches[1].amplitude == pytest.approx(0.8j)
        assert (await col.query(X[150], top_k=1))[0].id == "r150"
        assert (await restored.check()).ok
