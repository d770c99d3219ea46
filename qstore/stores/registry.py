"""Where a database finds its Qdrant collections: one client per deployment, and a catalog
of collection configurations kept in Qdrant itself (the collection ``<prefix>_meta``), so
every Q-Store server pointed at the deployment sees the collections any of them created.

``url`` is an http(s) URL of a Qdrant server or cluster, a directory for the client's local
mode (in process, no server; one client per directory, shared within the process), or
":memory:" for local mode without a disk (shared within the process while any database uses it).
"""
from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from qdrant_client import AsyncQdrantClient, models

from qstore.errors import AlreadyExists, InvalidArgument
from qstore.stores.qdrant import QdrantStore, reached

log = logging.getLogger(__name__)

_META_ID = uuid.UUID("5e3a9d52-8f1c-4d0e-9a61-0c1f9b2d7e44")
_local: dict[str, tuple[AsyncQdrantClient, int]] = {}  # local-mode directory -> (client, users)


def is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def _local_key(url: str) -> str:
    return url if url == ":memory:" else os.path.abspath(url)


def _client(url: str, api_key: str | None) -> AsyncQdrantClient:
    if is_remote(url):
        return AsyncQdrantClient(url=url, api_key=api_key, timeout=30)
    path = _local_key(url)
    client, users = _local.get(path, (None, 0))
    if client is None:
        if url == ":memory:":
            client = AsyncQdrantClient(location=":memory:")
        else:
            os.makedirs(path, exist_ok=True)
            client = AsyncQdrantClient(path=path)
    _local[path] = (client, users + 1)
    return client


class QdrantCatalog:
    """The Qdrant side of one database: its client and the shared collection configs.

    ``shard_number``, ``replication_factor`` and ``write_consistency_factor`` apply to the
    collections it creates (a cluster; local mode ignores them)."""

    def __init__(self, url: str, api_key: str | None = None, prefix: str = "qstore", *,
                 shard_number: int | None = None, replication_factor: int | None = None,
                 write_consistency_factor: int | None = None):
        if not isinstance(url, str) or not url:
            raise InvalidArgument("qdrant_url must be an http(s) URL or a local directory", "invalid_argument")
        self.url = url
        self.client = _client(url, api_key)
        self.prefix = prefix
        self.meta = f"{prefix}_meta"
        self.cluster = {"shard_number": shard_number, "replication_factor": replication_factor,
                        "write_consistency_factor": write_consistency_factor}
        self._closed = False

    async def start(self) -> None:
        if not await reached(self.client.collection_exists(self.meta)):
            try:
                await reached(self.client.create_collection(self.meta, vectors_config={}))
            except Exception:  # another server created it first
                if not await reached(self.client.collection_exists(self.meta)):
                    raise

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if is_remote(self.url):
            await self.client.close()
            return
        path = _local_key(self.url)
        client, users = _local[path]
        if users > 1:
            _local[path] = (client, users - 1)
        else:
            del _local[path]
            await client.close()

    def qdrant_name(self, name: str) -> str:
        return f"{self.prefix}_c_{name}"

    @staticmethod
    def _id(name: str) -> str:
        return str(uuid.uuid5(_META_ID, name))

    def store(self, config: dict[str, Any]) -> QdrantStore:
        index = config.get("index") or {}
        consistency: Any = (models.ReadConsistencyType.MAJORITY if is_remote(self.url) else None)
        return QdrantStore(self.client, self.qdrant_name(config["name"]), config["dim"], config["metric"],
                           config.get("on_decohere", "delete"), exact=index.get("type") == "flat",
                           hnsw_ef=index.get("ef_search"), read_consistency=consistency,
                           remote=is_remote(self.url))

    async def create(self, config: dict[str, Any]) -> QdrantStore:
        if await self.load(config["name"]) is not None:
            raise AlreadyExists(f"collection {config['name']!r} exists in Qdrant; use db.collection"
                                f"({config['name']!r})", "collection_exists")
        store = self.store(config)
        index = config.get("index") or {}
        if await reached(self.client.collection_exists(store.collection)):  # a create interrupted before its config
            await store.drop()
        await store.create(**self.cluster, hnsw_m=index.get("m"), hnsw_ef_construct=index.get("ef_construction"))
        await self.save(config)
        return store

    async def save(self, config: dict[str, Any]) -> None:
        point = models.PointStruct(id=self._id(config["name"]), vector={}, payload=config)
        await reached(self.client.upsert(self.meta, [point], wait=True))

    async def load(self, name: str) -> dict[str, Any] | None:
        got = await reached(self.client.retrieve(self.meta, [self._id(name)], with_payload=True))
        return dict(got[0].payload) if got else None

    async def names(self) -> list[str]:
        out, offset = [], None
        while True:
            pts, offset = await reached(self.client.scroll(self.meta, limit=1024, offset=offset, with_payload=["name"]))
            out.extend(p.payload["name"] for p in pts)
            if offset is None:
                return sorted(out)

    async def drop(self, name: str) -> None:
        config = await self.load(name)
        await reached(self.client.delete(self.meta, models.PointIdsList(points=[self._id(name)]), wait=True))
        if config is not None:
            await self.store(config).drop()
