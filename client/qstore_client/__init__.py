"""Async client for a Q-Store server; needs only msgpack and numpy (HTTP/1.1 on asyncio streams).

    async with AsyncClient("http://127.0.0.1:8470", api_key=None) as client:
        col = await client.create_collection("docs", dim=384)
        await col.upsert(ids, vectors)
        hits = await col.query(vector, top_k=10)
"""
from .client import AsyncClient, Collection, Job
from .errors import (
                     ERROR_CODES,
                     AlreadyExists,
                     BackendError,
                     Cancelled,
                     Conflict,
                     Forbidden,
                     InsufficientStorage,
                     InvalidArgument,
                     LimitExceeded,
                     NotFound,
                     QStoreError,
                     Unauthorized,
                     Unavailable,
                     UnsupportedMediaType,
                     error,
)
from .types import Branch, Hit, Measurement, Page, Record

__all__ = [
    "AsyncClient", "Collection", "Job",
    "QStoreError", "InvalidArgument", "Unauthorized", "Forbidden", "NotFound", "AlreadyExists", "Conflict",
    "LimitExceeded", "UnsupportedMediaType", "BackendError", "Unavailable", "Cancelled",
    "InsufficientStorage", "ERROR_CODES", "error",
    "Record", "Hit", "Page", "Measurement", "Branch",
]
