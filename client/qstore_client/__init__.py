"""Async client for a Q-Store server; needs only msgpack and numpy (HTTP/1.1 on asyncio streams).

    async with AsyncClient("http://127.0.0.1:8470", api_key=None) as client:
        col = await client.create_collection("docs", dim=384)
        await col.upsert(ids, vectors)
        hits = await col.query(vector, top_k=10)
"""
from . import errors
from .client import AsyncClient, Collection, Job
from .errors import *  # noqa: F403 - the error tree
from .types import Branch, Hit, Measurement, Page, Record

__all__ = ["AsyncClient", "Collection", "Job", "Record", "Hit", "Page", "Measurement", "Branch", *errors.__all__]
