"""LmdbFaissStore: the store interface over the LMDB + FAISS collection (``Collection.store``).

It delegates to ``qstore.collection.Collection``: its one write path (``_commit``), its group
tables, its search over the in-memory summaries and the FAISS index. Documents written through
it come out exactly as they went in: versions, amplitudes, expiry, metadata and groups.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from qstore.index.filters import Predicate, compile_filter
from qstore.records import Doc
from qstore.states import entanglement
from qstore.storage import WriteContext, codec, scan
from qstore.stores.base import Stored

if TYPE_CHECKING:
    from qstore.collection import Collection


class LmdbFaissStore:
    def __init__(self, col: Collection):
        self.col = col

    async def read(self, ids: list[str]) -> dict[str, Stored]:
        col = self.col

        def read(txn: Any) -> dict[str, Stored]:
            get = col._reader(txn)
            out = {}
            for rid in dict.fromkeys(ids):
                doc = col._read_doc(get, rid)
                if doc is not None:
                    out[rid] = Stored(doc, self._groups_of(get, rid))
            return out
        return await col._storage.read(read)

    def _groups_of(self, get: Any, rid: str) -> dict[str, float]:
        groups = {n: self.col._group(get, n) for n in self.col._group_names(get, rid)}
        return {n: g["strength"] for n, g in groups.items() if g is not None}

    async def scroll_stored(self, limit: int, cursor: str | None,
                            pred: Predicate | None) -> tuple[list[tuple[str, Stored]], str | None]:
        """Up to ``limit`` stored records in id order (expired ones too), and the next id."""
        col = self.col

        def read(txn: Any) -> tuple[list[tuple[str, Stored]], str | None]:
            get = col._reader(txn)
            prefix = codec.u32(col.cid)
            out: list[tuple[str, Stored]] = []
            cur = col._storage.cursor(txn, "records")
            if not cur.set_range(prefix + (cursor or "").encode()):
                return out, None
            for key, raw in cur:
                if not key.startswith(prefix):
                    break
                rid = key[4:].decode()
                doc = codec.unpack(raw)
                if pred is not None and not pred(doc["m"]):
                    continue
                if len(out) == limit:
                    return out, rid
                out.append((rid, Stored(doc, self._groups_of(get, rid))))
            return out, None
        return await col._storage.read(read)

    def filter_for(self, filter: dict[str, Any]) -> Predicate:
        return compile_filter(filter)

    async def search(self, q: Any, k: int, filter: dict[str, Any] | None, context: str | None,
                     now: float) -> list[tuple[str, float]]:
        col = self.col
        pred = compile_filter(filter) if filter is not None else None
        hits = (await col._storage.run(col._search_sync, col._query_vectors(q), k, pred, context, None, now))[0]
        return [(h.id, h.score) for h in hits]

    async def count(self, now: float) -> int:
        return await self.col.count()  # on the database's clock, which ``now`` comes from

    async def sweep(self, now: float) -> int:
        return await self.col.sweep()

    async def write(self, puts: dict[str, Stored], deletes: list[str] | tuple[str, ...] = ()) -> None:
        """Write whole documents (group membership aside: see ``put_groups``) in one transaction."""
        docs: dict[str, Doc | None] = {rid: s.doc for rid, s in puts.items()}
        docs.update(dict.fromkeys(deletes))
        await self.col._write(lambda ctx: self.col._commit(ctx, docs))

    async def groups(self) -> dict[str, entanglement.Group]:
        col = self.col

        def read(txn: Any) -> dict[str, entanglement.Group]:
            prefix = codec.u32(col.cid) + b"G"
            return {key[len(prefix):].decode(): codec.unpack(raw)
                    for key, raw in scan(col._storage.cursor(txn, "groups"), prefix)}
        return await col._storage.read(read)

    async def put_groups(self, groups: dict[str, entanglement.Group]) -> None:
        col = self.col

        def write(ctx: WriteContext) -> None:
            for name, group in groups.items():
                col._put_group(ctx, name, col._group(ctx.get, name), group)
        await col._write(write)
