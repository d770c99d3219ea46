"""A collection: records in LMDB, their vectors in a FAISS index, one write path between them.

Every mutation goes through ``_commit_docs`` inside a group-commit transaction: it
rewrites record documents, the internal-id map, the expiry table and the change
sequence, then registers ``_apply`` to update the index and the in-memory summaries
after the commit (on the storage's applier thread; reads wait for it). The quantum
primitives (``qstore.states``) build documents and call the same path, so "commit,
then index" is decided in exactly one place.
"""
from __future__ import annotations

import contextlib
import heapq
import logging
import os
import threading
import time
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from qstore import records, validation
from qstore.errors import InvalidArgument, NotFound
from qstore.index import IndexSpec, VectorIndex, compile_filter
from qstore.index.rwlock import RWLock, WouldBlock
from qstore.index.snapshot import (
    Snapshot,
    SnapshotInvalid,
    read_snapshot,
    write_snapshot,
)
from qstore.records import Entry
from qstore.storage import WriteContext, codec
from qstore_client.types import Hit, Measurement, Page, Record

if TYPE_CHECKING:
    from qstore.database import Database

log = logging.getLogger(__name__)

# Filters keeping at most this many vectors (or this share of the collection) are answered
# by exact search over the survivors: HNSW recall collapses on selective filters.
EXACT_SEARCH_MAX = 4096
EXACT_SEARCH_SHARE = 0.10
SNAPSHOT_EVERY = 20_000  # vector changes between background snapshots
# A plain one-vector search that lately took less than this runs on the caller's thread:
# handing it to a reader thread and back costs 100-150 µs here, as much as a 20k-vector HNSW
# search. Slower searches go to threads, where several can run at once.
INLINE_SEARCH_MAX = 500e-6


class Collection:
    def __init__(self, db: Database, config: dict[str, Any]):
        self._db = db
        self._storage = db._storage
        self.name: str = config["name"]
        self.cid: int = config["cid"]
        self.dim: int = config["dim"]
        self.metric: str = config["metric"]
        self.spec = IndexSpec.parse(config["index"])
        self.coherence_time: float | None = config.get("coherence_time")
        self.on_decohere: str = config.get("on_decohere", "delete")
        self.regions: dict[str, Any] | None = config.get("regions")
        self.index = VectorIndex(self.dim, self.metric, self.spec)
        self._lock = RWLock()  # guards the summaries below; taken before the index lock
        self._entries: dict[str, Entry] = {}
        self._owner: dict[int, str] = {}
        self._contexts: dict[str, set[int]] = {}
        self._superposed = 0
        self._max_branches = 1
        self._expiry_heap: list[tuple[float, str]] = []
        self._expired: dict[str, Entry] = {}
        self._expiry_lock = threading.Lock()
        self._search_cost = 0.0  # moving average of a plain one-vector search, seconds
        self._unsnapshotted = 0
        self._snapshot_thread: threading.Thread | None = None
        self._snapshot_lock = threading.Lock()  # the background snapshot and close() share one temp file
        self.snapshot_seq = 0
        self.snapshot_problem: str | None = None  # why the last load discarded the snapshot
        self.dropped = False

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, dim={self.dim}, metric={self.metric!r}, index={self.spec.type!r})"

    @property
    def config(self) -> dict[str, Any]:
        return {"name": self.name, "cid": self.cid, "dim": self.dim, "metric": self.metric,
                "index": self.spec.to_dict(), "coherence_time": self.coherence_time,
                "on_decohere": self.on_decohere, "regions": self.regions}

    @property
    def snapshot_path(self) -> str:
        return os.path.join(self._storage.path, "indexes", f"{self.cid}.faiss")

    def _now(self) -> float:
        return self._db.clock()

    def _check_open(self) -> None:
        if self.dropped:
            raise NotFound(f"collection {self.name!r} was dropped", "collection_not_found")

    # ------------------------------------------------------------------ loading
    def load(self, txn: Any) -> None:
        """Build summaries from LMDB and the index from its verified snapshot plus the change sequence."""
        snap = self._restore_snapshot()
        added: set[int] = set()
        removed: set[int] = set()
        if snap is not None:
            self.snapshot_seq = snap.seq
            cur = self._storage.cursor(txn, "changes")
            if cur.set_range(codec.u64(snap.seq + 1)):
                for _key, raw in cur:
                    change = codec.unpack(raw)
                    if change["c"] == self.cid:
                        added.update(change["a"])
                        removed.update(change["r"])
        add_ids: list[int] = []
        add_vecs: list[np.ndarray] = []
        prefix = codec.u32(self.cid)
        cur = self._storage.cursor(txn, "records")
        if cur.set_range(prefix):
            for key, raw in cur:
                if not key.startswith(prefix):
                    break
                doc = codec.unpack(raw)
                rid = key[4:].decode()
                self._track(rid, records.doc_entry(doc))
                for branch in doc["b"]:
                    if snap is None or branch[0] in added:
                        add_ids.append(branch[0])
                        add_vecs.append(codec.vector_from(branch[1]))
        if snap is not None:
            present = set(self.index.ids().tolist())
            removed &= present
            add_ids, add_vecs = zip(*[(i, v) for i, v in zip(add_ids, add_vecs) if i not in present]) \
                if add_ids else ((), ())
        vecs = self.index.prepare(np.stack(add_vecs)) if add_vecs else np.empty((0, self.dim), np.float32)
        self.index.apply(np.array(add_ids, np.int64), vecs, np.array(sorted(removed), np.int64),
                         self._storage.last_seq)
        self.index.wait_for_rebuild()
        problem = self.index_mismatch()
        if problem:  # e.g. a snapshot whose change history was pruned; LMDB has the truth
            log.error("index of %s disagrees with LMDB (%s); rebuilding", self.name, problem)
            self.snapshot_problem = self.snapshot_problem or f"replay left the index inconsistent: {problem}"
            self.index = VectorIndex(self.dim, self.metric, self.spec)
            self.snapshot_seq = 0  # the snapshot on disk is not what the index holds now
            self._rebuild_from(txn)
            self.index.wait_for_rebuild()

    def _restore_snapshot(self) -> Snapshot | None:
        """Load the verified snapshot into ``self.index``; None (logged) when there is none to
        trust, and the index is then built from LMDB alone."""
        try:
            snap = read_snapshot(self.snapshot_path)
            if snap is None:
                log.info("no snapshot of %s; building its index from LMDB", self.name)
                return None
            if snap.cid != self.cid:
                raise SnapshotInvalid(f"it belongs to collection id {snap.cid}, not {self.cid}")
            if snap.seq > self._storage.last_seq:
                raise SnapshotInvalid(f"it is newer than the database (sequence {snap.seq} > "
                                      f"{self._storage.last_seq})")
            try:
                index = VectorIndex.restore(self.dim, self.metric, self.spec, snap.seq, snap.tombstones, snap.data)
            except RuntimeError as exc:  # FAISS's own parse errors
                raise SnapshotInvalid(f"FAISS cannot read it: {exc}") from None
            if index._index.d != self.dim or index.size != snap.count:
                raise SnapshotInvalid(f"it holds {index.size} vectors of dimension {index._index.d}, "
                                      f"its header says {snap.count} of dimension {self.dim}")
        except (SnapshotInvalid, OSError) as exc:
            self.snapshot_problem = f"snapshot {self.snapshot_path} discarded: {exc}"
            log.warning("%s; rebuilding the index of %s from LMDB", self.snapshot_problem, self.name)
            with contextlib.suppress(OSError):  # the next snapshot replaces it; until then it misleads
                os.remove(self.snapshot_path)
            return None
        self.index = index
        return snap

    def index_mismatch(self) -> str | None:
        """How the index's vector ids differ from the branch ids in LMDB's records, or None."""
        live = np.concatenate([e.iids for e in self._entries.values()]) if self._entries \
            else np.empty(0, np.int64)
        have = self.index.ids()
        missing = np.setdiff1d(live, have)
        extra = np.setdiff1d(have, live)
        if not len(missing) and not len(extra) and len(have) == len(live):
            return None
        return (f"{len(missing)} vector(s) missing from the index, {len(extra)} not in LMDB, "
                f"{len(have)} indexed vs {len(live)} stored")

    def summary_mismatch(self, docs: dict[str, dict[str, Any]]) -> list[str]:
        """How the in-memory summaries differ from these LMDB documents (record id -> document)."""
        out = []
        if set(self._entries) != set(docs):
            out.append(f"{len(set(docs) - set(self._entries))} record(s) missing from the summaries, "
                       f"{len(set(self._entries) - set(docs))} not in LMDB")
        with self._expiry_lock:
            timed = set(self._expired) | {rid for _t, rid in self._expiry_heap}
        for rid, doc in docs.items():
            entry, want = self._entries.get(rid), records.doc_entry(doc)
            if entry is None:
                continue
            if (not np.array_equal(entry.iids, want.iids) or entry.contexts != want.contexts
                    or entry.expires_at != want.expires_at or entry.metadata != want.metadata
                    or not np.allclose(entry.probs, want.probs)):
                out.append(f"summary of {rid!r} differs from its record")
            elif any(self._owner.get(i) != rid for i in want.iids.tolist()):
                out.append(f"branch owners of {rid!r} are wrong")
            elif want.expires_at is not None and rid not in timed:
                out.append(f"{rid!r} expires at {want.expires_at} but is not in the expiry heap")
        superposed = sum(1 for d in docs.values() if len(d["b"]) > 1)
        if self._superposed != superposed:
            out.append(f"superposed count is {self._superposed}, LMDB has {superposed}")
        return out

    def rebuild_derived(self, txn: Any) -> None:
        """Rebuild the summaries and the index from LMDB alone (``check(repair=True)``)."""
        with self._lock.write():
            self._entries, self._owner, self._contexts = {}, {}, {}
            self._superposed, self._max_branches = 0, 1
            with self._expiry_lock:
                self._expiry_heap, self._expired = [], {}
            prefix = codec.u32(self.cid)
            cur = self._storage.cursor(txn, "records")
            if cur.set_range(prefix):
                for key, raw in cur:
                    if not key.startswith(prefix):
                        break
                    self._track(key[4:].decode(), records.doc_entry(codec.unpack(raw)))
            self.index.wait_for_rebuild()
            self.index = VectorIndex(self.dim, self.metric, self.spec)
            self._rebuild_from(txn)
            self.index.wait_for_rebuild()
            self.snapshot_seq = 0  # the snapshot on disk no longer describes the index

    def _rebuild_from(self, txn: Any) -> None:
        ids, vecs = [], []
        for rid, entry in self._entries.items():
            doc = codec.unpack(self._storage.get(txn, "records", codec.record_key(self.cid, rid)))
            ids.extend(entry.iids.tolist())
            vecs.append(records.doc_vectors(doc))
        if ids:
            self.index.apply(np.array(ids, np.int64), self.index.prepare(np.concatenate(vecs)),
                             np.empty(0, np.int64), self._storage.last_seq)

    # ------------------------------------------------------------------ summaries
    def _track(self, rid: str, entry: Entry) -> None:
        self._entries[rid] = entry
        for iid, ctx in zip(entry.iids.tolist(), entry.contexts):
            self._owner[iid] = rid
            if ctx is not None:
                self._contexts.setdefault(ctx, set()).add(iid)
        if entry.superposed:
            self._superposed += 1
            self._max_branches = max(self._max_branches, len(entry.iids))
        if entry.expires_at is not None:
            with self._expiry_lock:
                heapq.heappush(self._expiry_heap, (entry.expires_at, rid))

    def _untrack(self, rid: str) -> None:
        entry = self._entries.pop(rid, None)
        if entry is None:
            return
        for iid, ctx in zip(entry.iids.tolist(), entry.contexts):
            self._owner.pop(iid, None)
            if ctx is not None:
                self._contexts[ctx].discard(iid)
        if entry.superposed:
            self._superposed -= 1
        with self._expiry_lock:
            self._expired.pop(rid, None)

    def _due(self, now: float) -> dict[str, Entry]:
        """Records whose coherence time has passed but that the sweeper has not removed yet."""
        with self._expiry_lock:
            heap = self._expiry_heap
            while heap and heap[0][0] <= now:
                t, rid = heapq.heappop(heap)
                entry = self._entries.get(rid)
                if entry is not None and entry.expires_at == t:
                    self._expired[rid] = entry
            return dict(self._expired) if self._expired else {}

    def _view(self, entry: Entry, due: bool) -> Entry | None:
        """A record as reads see it: gone once decohered, or collapsed in collapse mode."""
        if not due:
            return entry
        if self.on_decohere == "collapse" and entry.superposed:
            return entry.collapsed()
        return None

    def _hidden_iids(self, due: dict[str, Entry]) -> np.ndarray | None:
        if not due:
            return None
        hide = []
        for entry in due.values():
            view = self._view(entry, True)
            keep = set() if view is None else set(view.iids.tolist())
            hide.extend(i for i in entry.iids.tolist() if i not in keep)
        return np.array(hide, np.int64) if hide else None

    # ------------------------------------------------------------------ the write path
    def _alloc(self, ctx: WriteContext, n: int) -> list[int]:
        key = b"next_iid:" + codec.u32(self.cid)
        raw = ctx.get("meta", key)
        start = codec.read_u64(raw) if raw else 0
        ctx.put("meta", key, codec.u64(start + n))
        return list(range(start, start + n))

    def _read_doc(self, ctx: WriteContext, rid: str) -> dict[str, Any] | None:
        raw = ctx.get("records", codec.record_key(self.cid, rid))
        return codec.unpack(raw) if raw else None

    def _commit_docs(self, ctx: WriteContext, docs: dict[str, dict[str, Any] | None],
                     olds: dict[str, dict[str, Any] | None] | None = None) -> None:
        """Write (or delete, for None) whole record documents; index them after the commit.
        ``olds`` are the current documents when the caller has just read them in this ``ctx``."""
        from qstore.states import entanglement  # groups refer back to records

        add_ids: list[int] = []
        add_vecs: list[np.ndarray] = []
        removed: list[int] = []
        updates: dict[str, Entry | None] = {}
        for rid, doc in docs.items():
            key = codec.record_key(self.cid, rid)
            old = olds[rid] if olds is not None else self._read_doc(ctx, rid)
            if old is None and doc is None:
                continue
            if old is not None:
                for b in old["b"]:
                    removed.append(b[0])
                    ctx.delete("rev", codec.iid_key(self.cid, b[0]))
                if old["e"] is not None:
                    ctx.delete("expiry", codec.expiry_key(old["e"], self.cid, rid))
            if doc is None:
                ctx.delete("records", key)
                entanglement.leave_groups(ctx, self, rid)
                updates[rid] = None
                continue
            ctx.put("records", key, codec.pack(doc))
            for b in doc["b"]:
                ctx.put("rev", codec.iid_key(self.cid, b[0]), rid.encode())
                add_ids.append(b[0])
                add_vecs.append(codec.vector_from(b[1]))
            if doc["e"] is not None:
                ctx.put("expiry", codec.expiry_key(doc["e"], self.cid, rid), b"")
            updates[rid] = records.doc_entry(doc)
        if not updates:
            return
        seq = ctx.log_change(self.cid, add_ids, removed)
        vecs = self.index.prepare(np.stack(add_vecs)) if add_vecs else np.empty((0, self.dim), np.float32)
        ids = np.array(add_ids, np.int64)
        gone = np.array(removed, np.int64)
        ctx.apply_later(lambda: self._apply(seq, ids, vecs, gone, updates))

    def _apply(self, seq: int, ids: np.ndarray, vecs: np.ndarray, removed: np.ndarray,
               updates: dict[str, Entry | None]) -> None:
        if self.dropped:
            return
        with self._lock.write():
            self.index.apply(ids, vecs, removed, seq)
            for rid, entry in updates.items():
                self._untrack(rid)
                if entry is not None:
                    self._track(rid, entry)
        self._unsnapshotted += len(ids) + len(removed)
        if self._unsnapshotted >= self._db.snapshot_every and self._snapshot_thread is None:
            self._snapshot_thread = threading.Thread(target=self.snapshot, name="qstore-snapshot", daemon=True)
            self._snapshot_thread.start()

    def snapshot(self) -> None:
        """Persist the index atomically with the last sequence number it contains."""
        try:
            with self._snapshot_lock:
                os.makedirs(os.path.dirname(self.snapshot_path), exist_ok=True)
                self.index.wait_for_rebuild()
                pending = self._unsnapshotted
                seq, tombs, data, count = self.index.snapshot()
                if not self.dropped:
                    write_snapshot(self.snapshot_path, self.cid, seq, count, tombs, data)
                    self.snapshot_seq = seq
                    self._unsnapshotted -= pending
        except Exception:
            log.exception("snapshot of %s failed; the change sequence still covers it", self.name)
        finally:
            if threading.current_thread() is self._snapshot_thread:
                self._snapshot_thread = None

    def _expiry_for(self, coherence_time: Any) -> float | None:
        t = validation.check_coherence_time(coherence_time)
        t = self.coherence_time if t is None else t
        return None if t is None else self._now() + t

    # ------------------------------------------------------------------ CRUD
    async def info(self) -> dict[str, Any]:
        self._check_open()
        return {"name": self.name, "dim": self.dim, "metric": self.metric, "index": self.spec.to_dict(),
                "coherence_time": self.coherence_time, "on_decohere": self.on_decohere,
                "count": await self.count(), "indexed_vectors": self.index.size,
                "tombstones": self.index.tombstones}

    async def upsert(self, ids: list[str], vectors: Any, metadata: list[dict[str, Any]] | None = None,
                     coherence_time: float | None = None) -> int:
        """Insert or replace records (one branch each). Returns the number written once durable."""
        self._check_open()
        ids = validation.check_ids(ids)
        vecs = validation.check_vectors(vectors, self.dim, metric=self.metric, n=len(ids))
        mds = validation.check_metadata_list(metadata, len(ids))
        expires = self._expiry_for(coherence_time)
        codec.pack(mds)  # fail here, not in the writer, on anything msgpack rejects

        def write(ctx: WriteContext) -> int:
            iids = self._alloc(ctx, len(ids))
            olds = {rid: self._read_doc(ctx, rid) for rid in ids}
            docs = {rid: records.make_doc([(iid, vec, None, 1.0)], md, expires,
                                          (olds[rid]["v"] + 1) if olds[rid] else 1)
                    for rid, iid, vec, md in zip(ids, iids, vecs, mds)}
            self._commit_docs(ctx, docs, olds)
            return len(ids)

        return await self._write(write)

    async def _write(self, fn: Callable[[WriteContext], Any]) -> Any:
        self._check_open()
        return await self._storage.write(lambda ctx: (self._check_open(), fn(ctx))[1])

    async def get(self, ids: list[str]) -> list[Record | None]:
        self._check_open()
        ids = validation.check_ids(ids, unique=False)
        return await self._storage.read(self._get_sync, ids, self._now())

    def _get_sync(self, txn: Any, ids: list[str], now: float) -> list[Record | None]:
        due = self._due(now)
        out: list[Record | None] = []
        for rid in ids:
            raw = self._storage.get(txn, "records", codec.record_key(self.cid, rid))
            if raw is None:
                out.append(None)
                continue
            doc = codec.unpack(raw)
            expired = doc["e"] is not None and doc["e"] <= now
            view = self._view(records.doc_entry(doc), expired or rid in due)
            out.append(None if view is None else records.doc_record(rid, doc, collapsed=expired))
        return out

    async def delete(self, ids: list[str]) -> int:
        """Delete records; unknown ids are ignored (idempotent). Returns how many existed."""
        self._check_open()
        ids = validation.check_ids(ids, unique=False)

        def write(ctx: WriteContext) -> int:
            present = [rid for rid in dict.fromkeys(ids) if self._read_doc(ctx, rid) is not None]
            self._commit_docs(ctx, {rid: None for rid in present})
            return len(present)

        return await self._write(write)

    async def count(self) -> int:
        self._check_open()
        await self._storage.settle()
        due = self._due(self._now())
        gone = sum(1 for e in due.values() if self._view(e, True) is None)
        return len(self._entries) - gone

    async def scroll(self, limit: int = 100, cursor: str | None = None,
                     filter: dict[str, Any] | None = None) -> Page:
        """Records in id order. ``next_cursor`` is opaque; pass it back for the next page."""
        self._check_open()
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= validation.MAX_TOP_K:
            raise InvalidArgument(f"limit must be in 1..{validation.MAX_TOP_K}", "invalid_argument")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument("cursor must be a string from a previous page", "invalid_cursor")
        pred = compile_filter(filter) if filter is not None else None
        return await self._storage.read(self._scroll_sync, limit, cursor, pred, self._now())

    def _scroll_sync(self, txn: Any, limit: int, cursor: str | None, pred: Any, now: float) -> Page:
        due = self._due(now)
        prefix = codec.u32(self.cid)
        cur = self._storage.cursor(txn, "records")
        out: list[Record] = []
        if not cur.set_range(prefix + (cursor or "").encode()):
            return Page([], None)
        for key, raw in cur:
            if not key.startswith(prefix):
                break
            rid = key[4:].decode()
            doc = codec.unpack(raw)
            expired = rid in due or (doc["e"] is not None and doc["e"] <= now)
            if self._view(records.doc_entry(doc), expired) is None or (pred and not pred(doc["m"])):
                continue
            if len(out) == limit:
                return Page(out, rid)
            out.append(records.doc_record(rid, doc, collapsed=expired))
        return Page(out, None)

    # ------------------------------------------------------------------ search
    def _query_vectors(self, vector: Any) -> np.ndarray:
        return self.index.prepare(validation.check_vectors(vector, self.dim, metric=self.metric))

    async def query(self, vector: Any, top_k: int = 10, filter: dict[str, Any] | None = None,
                    context: str | None = None, tunneling: float | None = None, seed: int | None = None,
                    ef: int | None = None, per_region: int | None = None) -> list[Hit]:
        """Nearest records, one row per record, ranked by score (higher is more similar).

        ``context`` scores superposed records by that context's branch only; without it they
        score by the Born-weighted similarity. ``tunneling`` > 0 also searches far regions
        (see ``qstore.states.tunneling``); ``None`` or 0 is plain search.
        """
        self._check_open()
        q = self._query_vectors(vector)
        if q.shape[0] != 1:
            raise InvalidArgument("query takes one vector; use query_batch for several", "dimension_mismatch")
        top_k = validation.check_top_k(top_k)
        pred = compile_filter(filter) if filter is not None else None
        if context is not None and not isinstance(context, str):
            raise InvalidArgument("context must be a string", "invalid_argument")
        if ef is not None and (not isinstance(ef, int) or isinstance(ef, bool) or ef < 1):
            raise InvalidArgument("ef must be a positive integer", "invalid_argument")
        if tunneling is not None:
            from qstore.states import tunneling as tunnel
            if tunnel.check_strength(tunneling) > 0:
                await self._storage.settle()
                if tunnel.stale(self):
                    await self.build_regions()
                return await self._storage.run(tunnel.search, self, q[0], top_k, pred, context, float(tunneling),
                                               seed, per_region, self._now())
        now = self._now()
        if pred is None and context is None and ef is None and not self._superposed \
                and self._search_cost < INLINE_SEARCH_MAX and self._storage.settled:
            try:
                return self._search_sync(q, top_k, None, None, None, now, wait=False)[0]
            except WouldBlock:  # a write is being applied: wait for it on a reader thread
                pass
        return (await self._storage.run(self._search_sync, q, top_k, pred, context, ef, now))[0]

    async def query_batch(self, vectors: Any, top_k: int = 10,
                          filter: dict[str, Any] | None = None) -> list[list[Hit]]:
        self._check_open()
        q = self._query_vectors(vectors)
        top_k = validation.check_top_k(top_k)
        pred = compile_filter(filter) if filter is not None else None
        return await self._storage.run(self._search_sync, q, top_k, pred, None, None, self._now())

    def candidates(self, pred: Any, context: str | None, due: dict[str, Entry]) -> np.ndarray | None:
        """Internal ids a search may return, or None for "every live vector"."""
        if context is None and pred is None:
            return None
        if context is not None:
            pool = self._contexts.get(context, set())
            ids = [i for i in pool if (pred is None or pred(self._entries[self._owner[i]].metadata))]
        else:
            ids = [i for rid, e in self._entries.items() if pred(e.metadata) for i in e.iids.tolist()]
        hidden = self._hidden_iids(due)
        arr = np.array(ids, np.int64)
        return arr[~np.isin(arr, hidden)] if hidden is not None and len(arr) else arr

    def _search_sync(self, q: np.ndarray, k: int, pred: Any, context: str | None, ef: int | None,
                     now: float, wait: bool = True) -> list[list[Hit]]:
        start = time.perf_counter()
        with self._lock.read(wait):
            due = self._due(now)
            allowed = self.candidates(pred, context, due)
            kk = k * min(self._max_branches, 8) if self._superposed else k
            scores, iids = self._raw_search(q, kk, allowed, self._hidden_iids(due) if allowed is None else None,
                                            ef, wait)
            hits = [self._rank(q[r], scores[r], iids[r], k, context, due) for r in range(len(q))]
        if len(q) == 1 and allowed is None and ef is None:
            self._search_cost += 0.1 * (time.perf_counter() - start - self._search_cost)
        return hits

    def _raw_search(self, q: np.ndarray, k: int, allowed: np.ndarray | None, hidden: np.ndarray | None,
                    ef: int | None, wait: bool = True) -> tuple[np.ndarray, np.ndarray]:
        if allowed is None:
            return self.index.search(q, k, exclude=hidden, ef=ef, wait=wait)
        live = max(self.index.size, 1)
        if len(allowed) <= EXACT_SEARCH_MAX or len(allowed) <= EXACT_SEARCH_SHARE * live:
            return self.index.exact_search(q, k, allowed)
        # HNSW needs a wider beam when the selector rejects most of what it visits.
        boost = int(min(1024, max(ef or self.spec.ef_search, k) * live / len(allowed)))
        return self.index.search(q, k, allowed=allowed, ef=boost)

    def _rank(self, q: np.ndarray, scores: np.ndarray, iids: np.ndarray, k: int, context: str | None,
              due: dict[str, Entry]) -> list[Hit]:
        """One row per record. A superposed record scores Σ|α_i|²·sim(q, v_i) over its branches,
        or over the branches labelled ``context`` (renormalised) when a context is given."""
        seen: dict[str, float] = {}
        for s, iid in zip(scores.tolist(), iids.tolist()):
            if iid < 0:
                continue
            rid = self._owner.get(iid)
            if rid is not None and rid not in seen:
                seen[rid] = s
        if self._superposed:
            mixed = []  # (record, its branch ids, their renormalised probabilities)
            for rid in seen:
                entry = self._view(self._entries[rid], rid in due)
                if entry is None or not entry.superposed:
                    continue
                mask = np.ones(len(entry.iids), bool) if context is None else \
                    np.array([c == context for c in entry.contexts])
                if mask.sum() > 1:
                    mixed.append((rid, entry.iids[mask], entry.probs[mask] / entry.probs[mask].sum()))
            if mixed:
                sims = self.index.similarity(q[None, :], self.index.vectors(np.concatenate([m[1] for m in mixed])))[0]
                at = 0
                for rid, ids, probs in mixed:
                    seen[rid] = float(np.dot(probs, sims[at:at + len(ids)]))
                    at += len(ids)
        ranked = sorted(seen.items(), key=itemgetter(1), reverse=True)[:k]  # stable: ties keep FAISS's order
        entries = self._entries
        return [Hit(rid, s, dict(entries[rid].metadata)) for rid, s in ranked]

    # ------------------------------------------------------------------ quantum primitives
    async def build_regions(self, n_regions: int | None = None, seed: int = 0) -> int:
        """(Re)partition the vectors into tunneling regions and persist them. Returns how many."""
        from qstore.states import tunneling as tunnel
        self._check_open()
        self.regions = await self._storage.run(tunnel.build_regions, self, n_regions, seed)
        await self._db.save_collection_config(self)
        return len(self.regions["centroids"])

    async def superpose(self, id: str, branches: list[tuple[Any, str | None, complex]],
                        metadata: dict[str, Any] | None = None, coherence_time: float | None = None) -> None:
        from qstore.states import superposition
        await superposition.superpose(self, id, branches, metadata, coherence_time)

    async def measure(self, id: str, context: str | None = None, collapse: bool = False,
                      seed: int | None = None) -> Measurement:
        from qstore.states import measurement
        return await measurement.measure(self, id, context, collapse, seed)

    async def entangle(self, group: str, ids: list[str], strength: float = 1.0) -> None:
        from qstore.states import entanglement
        await entanglement.entangle(self, group, ids, strength)

    async def update(self, id: str, vector: Any) -> None:
        from qstore.states import entanglement
        await entanglement.update(self, id, vector)

    async def correlation(self, id_a: str, id_b: str) -> float:
        from qstore.states import entanglement
        return await entanglement.correlation(self, id_a, id_b)
