"""The decoherence sweeper: makes expiry durable.

Reads already hide a record the moment its coherence time passes (``Collection._due``);
the sweeper then deletes it from LMDB and the index, or, with ``on_decohere="collapse"``,
rewrites a superposed record as its most probable branch with no expiry.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qstore import records
from qstore.states.measurement import collapsed_doc
from qstore.storage import WriteContext

if TYPE_CHECKING:
    from qstore.collection import Collection
    from qstore.database import Database


async def sweep(db: Database, collections: list[Collection]) -> int:
    total = 0
    for col in collections:
        now = db.clock()
        due = list(col._due(now))
        if not due or col.dropped:
            continue

        def write(ctx: WriteContext, col: Collection = col, due: list[str] = due, now: float = now) -> int:
            docs: dict[str, dict[str, Any] | None] = {}
            for rid in due:
                doc = col._read_doc(ctx, rid)
                if doc is None or doc["e"] is None or doc["e"] > now:
                    continue  # replaced or deleted since it fell due
                entry = records.doc_entry(doc)
                if col.on_decohere == "collapse" and entry.superposed:
                    docs[rid] = {**collapsed_doc(col, ctx, doc, entry.top), "e": None}
                else:
                    docs[rid] = None
            col._commit_docs(ctx, docs)
            return len(docs)

        total += await col._write(write)
    return total
