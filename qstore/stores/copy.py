"""Copy a collection into a new one in any store, exactly and resumably.

Records travel as stored documents (every branch, amplitude, version, metadata and absolute
expiry) with their entanglement groups, a page at a time. After each page the cursor is kept
in the database's LMDB, so a copy interrupted at any point resumes where it stopped when run
again with the same source and target: rewriting a page already written is harmless (the
same documents, the same versions; Qdrant names the same points). Records already expired
are left behind. Groups are written last, among the records copied.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from qstore.errors import AlreadyExists, InvalidArgument, NotFound
from qstore.states import decoherence
from qstore.storage import WriteContext, codec
from qstore.stores.base import RecordStore, Stored

if TYPE_CHECKING:
    from qstore.database import Database

log = logging.getLogger(__name__)

PAGE = 500


def _marker(source: str, target: str) -> bytes:
    return b"copy:" + source.encode() + b"\0" + target.encode()


async def copy_collection(db: Database, source: str, target: str, store: str | None = None,
                          filter: dict[str, Any] | None = None, page: int = PAGE,
                          progress: Callable[[int, int], None] | None = None,
                          cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Copy ``source`` into the new collection ``target`` in ``store`` (default: the database's).
    ``progress(copied, total)`` follows each page; ``cancelled()`` stops between pages (resume
    by calling again). Returns {"source", "target", "store", "copied", "resumed"}."""
    src = await db.collection(source)
    a: RecordStore = src.store
    flt = a.filter_for(filter) if filter is not None else None  # a bad filter creates nothing
    key = _marker(source, target)
    raw = await db._storage.read(lambda txn: db._storage.get(txn, "meta", key))
    state = codec.unpack(raw) if raw else None
    if state is None:
        if target in await db.list_collections():
            raise AlreadyExists(f"collection {target!r} exists; copy into a new name", "collection_exists")
        state = {"cursor": None, "copied": 0}
        await _save(db, key, state)  # before the target: a crash in between resumes, not refuses
    try:
        dst = await db.collection(target)
    except NotFound:
        info = await src.info()
        if info.get("index", {}).get("type") == "ivf" and (store or db.store) == "qdrant":
            info["index"] = None  # Qdrant indexes with HNSW
        dst = await db.create_collection(target, src.dim, metric=src.metric, index=info.get("index"),
                                         coherence_time=info.get("coherence_time"),
                                         on_decohere=info.get("on_decohere", "delete"), store=store)
    if dst.dim != src.dim or dst.metric != src.metric:
        raise InvalidArgument(f"{target!r} does not match {source!r} (dim, metric)", "invalid_argument")
    resumed = state["copied"] > 0
    b: RecordStore = dst.store
    total = await src.count()
    with tqdm(total=total, initial=state["copied"], unit="rec", desc=f"copy {source} -> {target}",
              disable=progress is not None) as bar:
        while True:
            if cancelled is not None and cancelled():
                log.info("copy %s -> %s stopped after %d records; run it again to resume",
                         source, target, state["copied"])
                return {"source": source, "target": target, "copied": state["copied"], "resumed": resumed,
                        "done": False}
            rows, nxt = await a.scroll_stored(page, state["cursor"], flt)
            now = db.clock()
            live = {rid: Stored(s.doc, {}) for rid, s in rows
                    if decoherence.view(s.doc, now, src.on_decohere) is not None}
            await b.write(live)
            state = {"cursor": nxt, "copied": state["copied"] + len(live)}
            await _save(db, key, state)
            bar.update(len(live))
            if progress is not None:
                progress(state["copied"], total)
            if nxt is None:
                break
    groups = await a.groups()
    dst_ids = set(await b.read(sorted({m for g in groups.values() for m in g["members"]})))
    kept = {}
    for name, g in groups.items():
        members = [m for m in g["members"] if m in dst_ids]
        if len(members) >= 2:
            kept[name] = {**g, "members": members}
    await b.put_groups(kept)
    await db._storage.write(lambda ctx: ctx.delete("meta", key))
    return {"source": source, "target": target, "store": getattr(dst, "store_kind", "lmdb"),
            "copied": state["copied"], "resumed": resumed, "done": True}


async def _save(db: Database, key: bytes, state: dict[str, Any]) -> None:
    data = codec.pack(state)

    def write(ctx: WriteContext) -> None:
        ctx.put("meta", key, data)
    await db._storage.write(write)
