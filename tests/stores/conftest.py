"""Every test here runs against each store: LMDB + FAISS, Qdrant in the client's local mode
(in process, no server), and a real Qdrant when QSTORE_TEST_QDRANT_URL is set."""
import os
import uuid

import pytest

import qstore

STORES = ["lmdb", "qdrant"] + (["qdrant-server"] if os.environ.get("QSTORE_TEST_QDRANT_URL") else [])


def open_args(store: str) -> dict:
    if store == "lmdb":
        return {}
    if store == "qdrant":  # local mode in memory: on disk it commits SQLite per write (slow here)
        return {"store": "qdrant", "qdrant_url": ":memory:"}
    return {"store": "qdrant", "qdrant_url": os.environ["QSTORE_TEST_QDRANT_URL"],
            "qdrant_options": {"prefix": f"t{uuid.uuid4().hex[:10]}"}}


@pytest.fixture(params=STORES)
def store(request) -> str:
    return request.param


@pytest.fixture
async def sdb(tmp_path, clock, store):
    """A database whose new collections live in ``store``."""
    database = await qstore.Database.open(str(tmp_path / "db"), clock=clock, sweep_interval=None,
                                          **open_args(store))
    yield database
    for name in await database.list_collections():
        if store == "qdrant-server":  # leave nothing behind on the shared server
            await database.drop_collection(name)
    await database.close()
