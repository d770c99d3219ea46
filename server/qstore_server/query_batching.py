"""Merge plain queries that arrive together into one `query_batch` engine call.

Under concurrent load each single-vector query would cost its own thread-pool hop and FAISS
call; queued behind one in flight, they are answered by a single `query_batch` (the same engine
search, row by row). A lone query runs at once with no added latency: batching only forms
while the engine is already busy with the same collection, top_k and filter.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import numpy as np

from qstore import Collection
from qstore_client.errors import QStoreError
from qstore_client.types import Hit

# query() arguments that change how one query is searched; with any of them it runs alone.
SOLO_ARGS = frozenset({"context", "tunneling", "seed", "ef", "per_region"})


class QueryBatcher:
    """`observe(n)` is told the size of every batch (1 for a query that ran alone)."""

    def __init__(self, observe: Callable[[int], None]) -> None:
        self._observe = observe
        self._busy: set[tuple] = set()
        self._waiting: dict[tuple, list[tuple[np.ndarray, asyncio.Future]]] = {}
        self._drains: set[asyncio.Task] = set()

    @staticmethod
    def _key(col: Collection, vector: np.ndarray, common: dict[str, Any]) -> tuple | None:
        if vector.ndim != 1:
            return None
        flt = common.get("filter")
        try:
            flt = None if flt is None else json.dumps(flt, sort_keys=True)
        except (TypeError, ValueError, RecursionError):  # not JSON-able: not batchable; the engine judges it
            return None
        return col, vector.shape[0], common.get("top_k"), flt

    async def query(self, col: Collection, args: dict[str, Any]) -> list[Hit]:
        vector = args["vector"]
        # A null is the default (the console sends every field): query_batch takes none of SOLO_ARGS.
        common = {k: v for k, v in args.items() if k != "vector" and v is not None}
        key = None if SOLO_ARGS & common.keys() else self._key(col, vector, common)
        if key is None:
            self._observe(1)
            return await col.query(**args)
        if key in self._busy:  # another query of this shape is in flight: join the next batch
            future = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(key, []).append((vector, future))
            return await future
        self._busy.add(key)
        self._observe(1)
        try:
            return await col.query(**args)
        finally:
            if self._waiting.get(key):
                task = asyncio.get_running_loop().create_task(self._drain(key, col, common))
                self._drains.add(task)
                task.add_done_callback(self._drains.discard)
            else:
                self._busy.discard(key)

    async def _drain(self, key: tuple, col: Collection, common: dict[str, Any]) -> None:
        try:
            while batch := self._waiting.pop(key, None):
                await self._answer(col, common, batch)
        finally:
            self._busy.discard(key)

    async def _answer(self, col: Collection, common: dict[str, Any],
                      batch: list[tuple[np.ndarray, asyncio.Future]]) -> None:
        self._observe(len(batch))
        try:
            results = await col.query_batch(np.stack([v for v, _ in batch]), **common)
        except QStoreError:
            # One bad query fails the whole batch: answer each alone so only it sees its error.
            outcomes = await asyncio.gather(*(col.query(v, **common) for v, _ in batch), return_exceptions=True)
            for (_, future), outcome in zip(batch, outcomes):
                if future.done():
                    continue
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
            return
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # delivered to every waiting handler, which reports it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), hits in zip(batch, results):
            if not future.done():
                future.set_result(hits)
