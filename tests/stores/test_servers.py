"""Two Q-Store servers over one Qdrant store: what one acknowledges, the other reads.

Two ways, as local mode cannot be opened by two processes:
* two server processes (`qstore serve`) over a Qdrant REST front (tests/stores/fake_qdrant.py:
  the endpoints Q-Store uses, answered by local mode) or over QSTORE_TEST_QDRANT_URL;
* two servers in this process over one local-mode directory, each with its own LMDB,
  Database and caches, talking over HTTP."""
import os
import uuid

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from qstore_client import AsyncClient, QStoreError
from qstore_server import ServerConfig, create_app

from ..servers import ServerProcess
from .fake_qdrant import FakeQdrant

DIM = 8


@pytest.fixture
async def two_servers(tmp_path):
    url = os.environ.get("QSTORE_TEST_QDRANT_URL") or str(tmp_path / "qdrant")
    servers = []
    for name in ("a", "b"):
        srv = TestServer(create_app(ServerConfig(data_dir=tmp_path / name, store="qdrant", qdrant_url=url)),
                         host="127.0.0.1")
        await srv.start_server()
        servers.append(srv)
    clients = [AsyncClient(str(s.make_url("")).rstrip("/")) for s in servers]
    yield clients
    for c in clients:
        await c.close()
    for s in servers:
        await s.close()


@pytest.fixture
def two_processes(tmp_path):
    fake = None if os.environ.get("QSTORE_TEST_QDRANT_URL") else FakeQdrant()
    url = os.environ.get("QSTORE_TEST_QDRANT_URL") or fake.url
    procs = [ServerProcess(tmp_path / name, "--store", "qdrant", "--qdrant-url", url, wait=False) for name in "ab"]
    try:
        for p in procs:
            p.wait_healthy()
        yield [AsyncClient(p.url) for p in procs]
    finally:
        codes = [p.stop() for p in procs]
        if fake is not None:
            fake.close()
    assert codes == [0, 0]


@pytest.mark.slow  # two server boots and shutdowns: ~40 s here
async def test_two_server_processes(two_processes):
    try:
        await _write_through_one_read_through_the_other(*two_processes)
    finally:
        for c in two_processes:
            await c.close()


async def test_two_servers_in_one_process(two_servers):
    await _write_through_one_read_through_the_other(*two_servers)


async def _write_through_one_read_through_the_other(a, b):
    name = f"shared-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, DIM)).astype(np.float32)
    col_a = await a.create_collection(name, dim=DIM, metric="l2", coherence_time=None)
    assert name in await b.list_collections()
    col_b = await b.collection(name)
    await col_a.upsert([f"r{i}" for i in range(20)], X, [{"i": i} for i in range(20)])
    assert await col_b.count() == 20
    rec = (await col_b.get(["r7"]))[0]
    np.testing.assert_array_equal(rec.vector, X[7])
    assert [h.id for h in await col_b.query(X[3], top_k=1)] == ["r3"]
    # an entangled update through B moves the partner as A sees it
    await col_a.entangle("pair", ["r1", "r2"], 1.0)
    assert await col_b.correlation("r1", "r2") == 1.0
    new = X[1] + 5
    await col_b.update("r1", new)
    moved = (await col_a.get(["r2"]))[0].vector
    np.testing.assert_allclose(moved, X[2] + (new - X[1]), rtol=1e-5, atol=1e-5)
    # a superposition written through A is measured through B
    await col_a.superpose("s", [(X[0], "x", 1), (X[1], "y", 1)])
    assert (await col_b.measure("s", context="y", collapse=True)).context == "y"
    assert len((await col_a.get(["s"]))[0].branches) == 1
    # regions built through A are the ones B tunnels with
    assert await col_a.build_regions(2, seed=0) == 2
    hits = await col_b.query(X[0], top_k=5, tunneling=100.0, seed=0)
    assert len(hits) == 5
    assert (await col_b.info())["count"] == 21
    await b.drop_collection(name)
    with pytest.raises(QStoreError) as e:
        await col_a.count()
    assert e.value.code == "collection_not_found"
    assert name not in await a.list_collections()
