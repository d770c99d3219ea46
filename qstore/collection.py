"""A collection: records in LMDB, their vectors in a FAISS index, one write path between them.

Every mutation goes through ``_commit`` inside a group-commit transaction: it
rewrites record documents, the internal-id map, the expiry table and the change
sequence, then registers ``_publish``, which updates the in-memory summaries and puts the
vectors in the index's fresh set before the caller is answered, and ``_integrate``, which
builds them into the graph in the background (nobody waits for it). The quantum
primitives in ``qstore.states`` are pure functions from record documents (and their
inputs, and explicit random draws) to new documents: this class reads the documents,
hands them over, and commits and indexes what comes back, so "commit, then index" is
decided in exactly one place.
"""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
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
    SnapshotWriter,
    read_snapshot,
)
from qstore.records import Doc, Entry
from qstore.search_queue import SearchQueue
from qstore.states import decoherence, entanglement, measurement, superposition
from qstore.states import tunneling as tunnel
from qstore.storage import WriteContext, codec, scan
from qstore_client.types import Hit, Measurement, Page, Record

if TYPE_CHECKING:
    from qstore.database import Database
    from qstore.stores.lmdb_faiss import LmdbFaissStore

log = logging.getLogger(__name__)

# Filters keeping at most this many vectors (or this share of the collection) are answered
# by exact search over the survivors: HNSW recall collapses on selective filters.
EXACT_SEARCH_MAX = 4096
EXACT_SEARCH_SHARE = 0.10
# Vector changes between background snapshots: at least this many, and at least a tenth of
# the index, so the bytes snapshots write stay proportional to the vectors stored (a fixed
# interval rewrites a growing index over and over: ~85 GB while loading 1M) and recovery
# replays at most a tenth of the graph's build.
SNAPSHOT_EVERY = 20_000
SNAPSHOT_SHARE = 0.1
# A plain one-vector search that lately took less than this runs on the caller's thread:
# handing it to a reader thread and back costs 100-150 µs beside a 20k-vector HNSW search (as
# much as the search) and ~0.4 ms beside a 1.2 ms one, so crossing the line costs a fifth or
# so, never half. Set at 0.5 ms, a write stream's fresh-set scans pushed 20k searches past it
# and cut loaded QPS by a sixth. Concurrent callers go to the reader threads either way.
INLINE_SEARCH_MAX = 2e-3
# A lone search that finds a write holding the index waits this long for it on the caller's
# thread before handing over to a reader thread: beside a write stream the graph builder holds
# the lock about 1 ms at a time, and waiting it out here beat the hop (loaded QPS +5-10 %).
INLINE_WAIT = 1e-3
# A caller alone gathers company (yields to the loop) once every this many plain queries, so
# others get their turn within a few milliseconds and a crowd is noticed.
GATHER_EVERY = 8

Getter = Callable[[str, bytes], "bytes | None"]  # (table, key) -> value, in a read or write txn
Scored = tuple[str, float, int]  # (record id, score, its best-matching branch id)


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
        self._owner = records.Owners()
        self._contexts: dict[str, set[int]] = {}
        self._superposed = 0
        self._max_branches = 1
        self._expiry_heap: list[tuple[float, str]] = []
        self._expired: dict[str, Entry] = {}
        self._expiry_lock = threading.Lock()
        self._iid_high = 0  # one past the largest internal id applied: ids are never reused
        self.changed_seq = 0  # the last change committed here (a failed batch leaves it high: more history kept)
        self._region_map: tunnel.RegionMap | None = None  # the tunneling region of each live vector
        self._search_cost = 0.0  # moving average of a plain one-vector search, seconds
        self._gathering: dict[int, list[tuple[np.ndarray, asyncio.Future[list[Hit]]]]] = {}  # by top_k
        self._crowded = False  # the last gathering found company
        self._queue = SearchQueue(self._storage.pool, self._storage.read_threads,
                                  self._search_queued)
        self._ungathered = 0  # plain queries since the last gathering
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
    def store(self) -> LmdbFaissStore:
        """This collection's records behind the store interface (``qstore.stores.base``)."""
        from qstore.stores.lmdb_faiss import LmdbFaissStore
        return LmdbFaissStore(self)

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
        for key, raw in scan(self._storage.cursor(txn, "records"), codec.u32(self.cid)):
            doc = codec.unpack(raw)
            self._track(records.doc_entry(key[4:].decode(), doc))
            for branch in doc["b"]:
                if snap is None or branch[0] in added:
                    add_ids.append(branch[0])
                    add_vecs.append(codec.vector_from(branch[1]))
        if snap is not None:  # a snapshot may hold vectors of changes after its sequence number
            present = set(self.index.ids().tolist())
            removed &= present
            keep = [k for k, i in enumerate(add_ids) if i not in present]
            add_ids, add_vecs = [add_ids[k] for k in keep], [add_vecs[k] for k in keep]
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
            entry, want = self._entries.get(rid), records.doc_entry(rid, doc)
            if entry is None:
                continue
            if (not np.array_equal(entry.iids, want.iids) or entry.contexts != want.contexts
                    or entry.expires_at != want.expires_at or entry.metadata != want.metadata
                    or not np.allclose(entry.probs, want.probs)):
                out.append(f"summary of {rid!r} differs from its record")
            elif any(self._owner.get(i) is not entry for i in want.iids.tolist()):
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
            self._entries, self._owner, self._contexts = {}, records.Owners(), {}
            self._superposed, self._max_branches = 0, 1
            with self._expiry_lock:
                self._expiry_heap, self._expired = [], {}
            for key, raw in scan(self._storage.cursor(txn, "records"), codec.u32(self.cid)):
                self._track(records.doc_entry(key[4:].decode(), codec.unpack(raw)))
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
    def _track(self, entry: Entry) -> None:
        rid = entry.rid
        self._entries[rid] = entry
        if len(entry.iids):
            self._iid_high = max(self._iid_high, int(entry.iids.max()) + 1)
        for iid, ctx in zip(entry.iids.tolist(), entry.contexts):
            self._owner.set(iid, entry)
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
            self._owner.clear(iid)
            if ctx is not None:
                self._contexts[ctx].discard(iid)
        if entry.superposed:
            self._superposed -= 1
        with self._expiry_lock:
            self._expired.pop(rid, None)

    def _due(self, now: float) -> dict[str, Entry]:
        """Records whose coherence time has passed but that the sweeper has not removed yet."""
        if not self._expiry_heap and not self._expired:  # nothing expires: skip the lock
            return {}
        with self._expiry_lock:
            heap = self._expiry_heap
            while heap and heap[0][0] <= now:
                t, rid = heapq.heappop(heap)
                entry = self._entries.get(rid)
                if entry is not None and entry.expires_at == t:
                    self._expired[rid] = entry
            return dict(self._expired) if self._expired else {}

    def _view(self, entry: Entry, due: bool) -> Entry | None:
        """The summary of ``decoherence.view``: gone once decohered, or collapsed in collapse mode."""
        if not due:
            return entry
        return entry.collapsed() if decoherence.collapses(len(entry.iids), self.on_decohere) else None

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

    def _read_doc(self, get: Getter, rid: str) -> Doc | None:
        raw = get("records", codec.record_key(self.cid, rid))
        return codec.unpack(raw) if raw else None

    def _visible(self, get: Getter, rid: str, now: float) -> Doc | None:
        """The record as every operation sees it: the one view of expiry (``decoherence.view``)."""
        return decoherence.view(self._read_doc(get, rid), now, self.on_decohere)

    def _must_see(self, get: Getter, rid: str, now: float) -> Doc:
        doc = self._visible(get, rid, now)
        if doc is None:
            raise NotFound(f"record {rid!r} does not exist in {self.name!r}", "not_found")
        return doc

    def _reader(self, txn: Any) -> Getter:
        return lambda table, key: self._storage.get(txn, table, key)

    def _commit(self, ctx: WriteContext, docs: dict[str, Doc | None],
                olds: dict[str, Doc | None] | None = None) -> None:
        """Write (or delete, for None) whole record documents, giving every branch a fresh internal
        id; index them after the commit. ``olds`` are the stored documents when the caller has
        just read them in this ``ctx``."""
        fresh = iter(self._alloc(ctx, sum(len(d["b"]) for d in docs.values() if d is not None)))
        add_ids: list[int] = []
        add_vecs: list[np.ndarray] = []
        removed: list[int] = []
        updates: dict[str, Entry | None] = {}
        for rid, doc in docs.items():
            key = codec.record_key(self.cid, rid)
            old = olds[rid] if olds is not None else self._read_doc(ctx.get, rid)
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
                for name in self._group_names(ctx.get, rid):
                    group = self._group(ctx.get, name)
                    self._put_group(ctx, name, group, entanglement.without(group, [rid]))
                updates[rid] = None
                continue
            doc = records.with_iids(doc, [next(fresh) for _ in doc["b"]])
            ctx.put("records", key, codec.pack(doc))
            for b in doc["b"]:
                ctx.put("rev", codec.iid_key(self.cid, b[0]), rid.encode())
                add_ids.append(b[0])
                add_vecs.append(codec.vector_from(b[1]))
            if doc["e"] is not None:
                ctx.put("expiry", codec.expiry_key(doc["e"], self.cid, rid), b"")
            updates[rid] = records.doc_entry(rid, doc)
        if not updates:
            return
        seq = ctx.log_change(self.cid, add_ids, removed)
        self.changed_seq = seq  # on the writer thread, where the change sequence is pruned
        vecs = self.index.prepare(np.stack(add_vecs)) if add_vecs else np.empty((0, self.dim), np.float32)
        ids = np.array(add_ids, np.int64)
        gone = np.array(removed, np.int64)
        ctx.after_commit(lambda: self._publish(ids, vecs, gone, updates))
        upto = int(ids.max()) if len(ids) else -1
        ctx.apply_later(lambda: self._integrate(seq, upto, len(ids) + len(gone)))

    def _publish(self, ids: np.ndarray, vecs: np.ndarray, removed: np.ndarray,
                 updates: dict[str, Entry | None]) -> None:
        """Make a commit visible before its caller is answered: the summaries, and the vectors
        in the index's fresh set (searched exactly until ``_integrate`` graphs them)."""
        if self.dropped:
            return
        with self._lock.write():
            self.index.publish(ids, vecs, removed)
            for rid, entry in updates.items():
                self._untrack(rid)
                if entry is not None:
                    self._track(entry)
            if len(ids):
                self._iid_high = max(self._iid_high, int(ids.max()) + 1)
            if self._region_map is not None:
                self._region_map.place(ids, vecs, removed)

    def _integrate(self, seq: int, upto: int, changed: int) -> None:
        """The graph work of a commit (its vectors have internal ids up to ``upto``), in the
        background: nobody waits for it."""
        if self.dropped:
            return
        self.index.integrate(seq, upto)
        self._unsnapshotted += changed
        due = max(self._db.snapshot_every, int(SNAPSHOT_SHARE * self.index.size))
        if self._unsnapshotted >= due and self._snapshot_thread is None \
                and not self.index.rebuilding:
            # Streamed to the temp file here, where the graph cannot change, so searches go on
            # meanwhile; digested, synced and renamed on a thread of its own, which then hands
            # the temp file (the snapshot lock) back.
            pending = self._unsnapshotted
            if not self._snapshot_lock.acquire(blocking=False):
                return  # a backup or close() has the temp file: a later batch snapshots instead
            try:
                writer = SnapshotWriter(self.snapshot_path)
                seq, count = self.index.snapshot(writer, graph_owner=True)
                self._snapshot_thread = threading.Thread(target=self._finish_snapshot,
                                                         args=(writer, seq, count, pending),
                                                         name="qstore-snapshot", daemon=True)
                self._snapshot_thread.start()
            except Exception:
                self._snapshot_thread = None
                self._snapshot_lock.release()
                log.exception("snapshot of %s failed; the change sequence still covers it", self.name)

    async def _write(self, fn: Callable[[WriteContext], Any]) -> Any:
        self._check_open()
        return await self._storage.write(lambda ctx: (self._check_open(), fn(ctx))[1])

    # ------------------------------------------------------------------ entanglement groups
    def _group_names(self, get: Getter, rid: str) -> list[str]:
        raw = get("groups", entanglement.member_key(self.cid, rid))
        return codec.unpack(raw) if raw else []

    def _group(self, get: Getter, name: str) -> entanglement.Group | None:
        raw = get("groups", entanglement.group_key(self.cid, name))
        return codec.unpack(raw) if raw else None

    def _put_group(self, ctx: WriteContext, name: str, old: entanglement.Group | None,
                   new: entanglement.Group | None) -> None:
        """Store a group (delete it for None) and keep each member's list of groups in step."""
        key = entanglement.group_key(self.cid, name)
        if new is None:
            ctx.delete("groups", key)
        else:
            ctx.put("groups", key, codec.pack(new))
        before = set(old["members"]) if old else set()
        after = set(new["members"]) if new else set()
        for rid in before ^ after:
            names = [g for g in self._group_names(ctx.get, rid) if g != name] + ([name] if rid in after else [])
            mkey = entanglement.member_key(self.cid, rid)
            if names:
                ctx.put("groups", mkey, codec.pack(sorted(names)))
            else:
                ctx.delete("groups", mkey)

    def _partners(self, get: Getter, rid: str, now: float) -> list[tuple[str, Doc, float]]:
        """(partner, its visible document, ρ) for every visible partner, in id order."""
        groups = [g for g in (self._group(get, n) for n in self._group_names(get, rid)) if g is not None]
        out = []
        for pid, rho in entanglement.partner_rhos(rid, groups).items():
            doc = self._visible(get, pid, now)
            if doc is not None:
                out.append((pid, doc, rho))
        return out

    def snapshot(self) -> None:
        """Persist the index atomically with the last sequence number it contains."""
        try:
            with self._snapshot_lock:
                self.index.wait_for_rebuild()
                pending = self._unsnapshotted
                writer = SnapshotWriter(self.snapshot_path)
                seq, count = self.index.snapshot(writer)
                self._commit_snapshot(writer, seq, count, pending)
        except Exception:
            log.exception("snapshot of %s failed; the change sequence still covers it", self.name)

    def _finish_snapshot(self, writer: SnapshotWriter, seq: int, count: int, pending: int) -> None:
        """The background half of a snapshot the applier streamed; it holds the snapshot lock."""
        try:
            self._commit_snapshot(writer, seq, count, pending)
        except Exception:
            log.exception("snapshot of %s failed; the change sequence still covers it", self.name)
        finally:
            self._snapshot_thread = None
            self._snapshot_lock.release()

    def _commit_snapshot(self, writer: SnapshotWriter, seq: int, count: int, pending: int) -> None:
        """``pending``: the changes the snapshot covers."""
        if self.dropped:
            writer.discard()
            return
        writer.commit(self.cid, seq, count)
        self.snapshot_seq = seq
        self._unsnapshotted -= pending

    def _expiry_for(self, coherence_time: Any) -> float | None:
        t = validation.check_coherence_time(coherence_time)
        t = self.coherence_time if t is None else t
        return None if t is None else self._now() + t

    # ------------------------------------------------------------------ CRUD
    async def info(self) -> dict[str, Any]:
        self._check_open()
        return {"name": self.name, "dim": self.dim, "metric": self.metric, "index": self.spec.to_dict(),
                "coherence_time": self.coherence_time, "on_decohere": self.on_decohere,
                "count": await self.count(), **await self._storage.run(self.index.counts)}

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
            olds = {rid: self._read_doc(ctx.get, rid) for rid in ids}
            docs = {rid: records.make_doc([(vec, None, 1.0)], md, expires, records.next_version(olds[rid]))
                    for rid, vec, md in zip(ids, vecs, mds)}
            self._commit(ctx, docs, olds)
            return len(ids)

        return await self._write(write)

    async def get(self, ids: list[str]) -> list[Record | None]:
        self._check_open()
        ids = validation.check_ids(ids, unique=False)
        return await self._storage.read(self._get_sync, ids, self._now())

    def _get_sync(self, txn: Any, ids: list[str], now: float) -> list[Record | None]:
        get = self._reader(txn)
        docs = [self._visible(get, rid, now) for rid in ids]
        return [None if doc is None else records.doc_record(rid, doc) for rid, doc in zip(ids, docs)]

    async def delete(self, ids: list[str]) -> int:
        """Delete records; unknown ids are ignored (idempotent). Returns how many were visible."""
        self._check_open()
        ids = validation.check_ids(ids, unique=False)
        now = self._now()

        def write(ctx: WriteContext) -> int:
            olds = {rid: self._read_doc(ctx.get, rid) for rid in dict.fromkeys(ids)}
            present = {rid: old for rid, old in olds.items() if old is not None}
            self._commit(ctx, dict.fromkeys(present), present)  # expired ones go too, uncounted
            return sum(decoherence.view(old, now, self.on_decohere) is not None for old in present.values())

        return await self._write(write)

    async def count(self) -> int:
        self._check_open()
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
        prefix = codec.u32(self.cid)
        cur = self._storage.cursor(txn, "records")
        out: list[Record] = []
        if not cur.set_range(prefix + (cursor or "").encode()):
            return Page([], None)
        for key, raw in cur:
            if not key.startswith(prefix):
                break
            rid = key[4:].decode()
            doc = decoherence.view(codec.unpack(raw), now, self.on_decohere)
            if doc is None or (pred and not pred(doc["m"])):
                continue
            if len(out) == limit:
                return Page(out, rid)
            out.append(records.doc_record(rid, doc))
        return Page(out, None)

    # ------------------------------------------------------------------ search
    def _query_vectors(self, vector: Any) -> np.ndarray:
        return self._scaled(validation.check_shape(vector, self.dim))

    def _scaled(self, rows: np.ndarray) -> np.ndarray:
        """Rows already checked for shape, checked for their values and scaled for the index."""
        return self.index.prepare(validation.check_values(rows, self.metric))

    async def query(self, vector: Any, top_k: int = 10, filter: dict[str, Any] | None = None,
                    context: str | None = None, tunneling: float | None = None, seed: int | None = None,
                    ef: int | None = None, per_region: int | None = None) -> list[Hit]:
        """Nearest records, one row per record, ranked by score (higher is more similar).

        ``context`` scores superposed records by that context's branches only; without it they
        score by the Born-weighted similarity. ``tunneling`` > 0 also searches far regions
        (see ``qstore.states.tunneling``); ``None`` or 0 is plain search.
        """
        self._check_open()
        row = validation.check_shape(vector, self.dim)
        if row.shape[0] != 1:
            raise InvalidArgument("query takes one vector; use query_batch for several", "dimension_mismatch")
        top_k = validation.check_top_k(top_k)
        if filter is None and context is None and ef is None and tunneling is None and not self._superposed:
            return await self._plain_query(row, top_k)
        q = self._scaled(row)
        pred = compile_filter(filter) if filter is not None else None
        validation.check_context(context)
        validation.check_ef(ef)
        if tunneling is not None and tunnel.check_strength(tunneling) > 0:
            cap = tunnel.check_per_region(per_region, top_k)
            if self.index.size >= 2:  # fewer vectors cannot be partitioned: plain search answers
                await self._fresh_regions()
                return await self._storage.run(self._tunnel_sync, q[0], top_k, pred, context,
                                               float(tunneling), seed, cap, self._now())
        if pred is None and context is None and ef is None and not self._superposed:
            return await self._plain_query(row, top_k)
        return (await self._storage.run(self._search_sync, q, top_k, pred, context, ef, self._now()))[0]

    async def _plain_query(self, row: np.ndarray, top_k: int) -> list[Hit]:
        """Concurrent callers use every core: while searches are in flight on the reader
        threads a query queues behind them (``qstore.search_queue``). A caller alone searches
        inline while searches are cheap (a thread hop costs as much as a 20k-vector search);
        to notice company, every GATHER_EVERY-th query (each one, while the last gathering
        found company) first yields to the loop once (~25 µs beside a 250 µs search), and the
        callers that call meanwhile are queued together with it.

        ``row`` is checked for shape only: a queued row's values are checked and scaled on a
        reader thread, with its chunk's (``_search_queued``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Hit]]
        if self._queue.busy:
            future = loop.create_future()
            self._queue.put([(row, top_k, future)])
            return await future
        group = self._gathering.get(top_k)
        if group is not None:
            future = loop.create_future()
            group.append((row, future))
            return await future
        if self._crowded or self._ungathered >= GATHER_EVERY:
            self._ungathered = 0
            future = loop.create_future()
            group = self._gathering[top_k] = [(row, future)]
            try:
                await asyncio.sleep(0)
            finally:
                del self._gathering[top_k]
                self._crowded = len(group) > 1
                if self._crowded:  # this caller too, so that if cancelled it leaves the others answered
                    self._queue.put([(g, top_k, f) for g, f in group])
            if self._crowded:
                return await future
        else:
            self._ungathered += 1
        q = self._scaled(row)
        hits = self._search_inline(q, top_k)
        return hits if hits is not None else await self._search_hop(q, top_k)

    def _search_inline(self, q: np.ndarray, top_k: int) -> list[Hit] | None:
        """A lone query's hits, searched on the loop while searches are cheap; None: hop.
        (Not a coroutine: after a search each extra frame runs from cold caches.)"""
        if self._search_cost < INLINE_SEARCH_MAX:
            try:
                return self._plain_search(q, top_k, self._now(), INLINE_WAIT)[0]
            except WouldBlock:  # a long write holds the index: wait for it on a reader thread
                pass
        return None

    async def _search_hop(self, q: np.ndarray, top_k: int) -> list[Hit]:
        return (await self._storage.run(self._plain_search, q, top_k, self._now()))[0]

    def _search_queued(self, rows: np.ndarray, k: int) -> list[list[Hit] | InvalidArgument]:
        """A chunk of the search queue, on a reader thread: the callers' rows are scaled and
        checked here for the whole chunk at once, off the event loop that every request to a
        server passes through (16 clients +3 %: benchmarks/README, session 11)."""
        now = self._now()
        with np.errstate(invalid="ignore", over="ignore"):
            q = self.index.prepare(rows)
        if np.isfinite(q).all():  # else a row is NaN, Inf, or zero under cosine (scaled by 1/0)
            return list(self._plain_search(q, k, now))
        answers: list[list[Hit] | InvalidArgument] = []  # a bad row fails its own caller only
        for r in range(len(rows)):
            try:
                answers.append(self._plain_search(self._scaled(rows[r:r + 1]), k, now)[0])
            except InvalidArgument as exc:
                answers.append(exc)
        return answers

    def _plain_search(self, q: np.ndarray, k: int, now: float, wait: float = math.inf) -> list[list[Hit]]:
        """``_search_sync`` without filter, context or ef, in one loop: right after the FAISS
        search every Python step runs from cold caches (at 100k vectors, building 10 hits
        through the general path cost ~70 µs beside a ~300 µs search)."""
        start = time.perf_counter()
        self.index.searching()
        with self._lock.read(wait):
            due = self._due(now)
            hidden = self._hidden_iids(due)
            scores, iids = self.index.search(q, k, exclude=hidden, wait=wait)
            if self._superposed:  # written since the caller looked: rank by Born score
                return [self._hits(self._ranked(row, k, None, hidden, None, None, due, wait)[:k]) for row in q]
            slots = self._owner.slots
            n = len(slots)
            out = []
            for row_scores, row_iids in zip(scores.tolist(), iids.tolist()):
                hits = []
                for s, iid in zip(row_scores, row_iids):
                    entry = slots[iid] if 0 <= iid < n else None
                    if entry is not None:
                        hits.append(Hit(entry.rid, s, dict(entry.metadata)))
                out.append(hits)
        if len(q) == 1:
            self._search_cost += 0.1 * (time.perf_counter() - start - self._search_cost)
        return out

    async def query_batch(self, vectors: Any, top_k: int = 10,
                          filter: dict[str, Any] | None = None) -> list[list[Hit]]:
        self._check_open()
        rows = validation.check_vectors(vectors, self.dim, metric=self.metric)  # one bad row fails the call
        top_k = validation.check_top_k(top_k)
        pred = compile_filter(filter) if filter is not None else None
        return await self._search_many(rows, top_k, pred, self._now())

    async def _search_many(self, qs: np.ndarray, top_k: int, pred: Any, now: float) -> list[list[Hit]]:
        """Several queries: plain ones through the search queue, so they use every reader
        thread; a filtered batch stays whole (each share would evaluate the filter over every
        record)."""
        if pred is not None:
            return await self._storage.run(self._search_sync, self.index.prepare(qs), top_k, pred, None, None, now)
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[list[Hit]]] = [loop.create_future() for _ in range(len(qs))]
        self._queue.put([(qs[i:i + 1], top_k, futures[i]) for i in range(len(qs))])
        return list(await asyncio.gather(*futures))

    def candidates(self, pred: Any, context: str | None, due: dict[str, Entry]) -> np.ndarray | None:
        """Internal ids a search may return, or None for "every live vector"."""
        if context is None and pred is None:
            return None
        if context is not None:
            pool = self._contexts.get(context, set())
            ids = [i for i in pool if (pred is None or pred(self._owner.slots[i].metadata))]
        else:
            ids = [i for rid, e in self._entries.items() if pred(e.metadata) for i in e.iids.tolist()]
        hidden = self._hidden_iids(due)
        arr = np.array(ids, np.int64)
        return arr[~np.isin(arr, hidden)] if hidden is not None and len(arr) else arr

    def _search_sync(self, q: np.ndarray, k: int, pred: Any, context: str | None, ef: int | None,
                     now: float, wait: float = math.inf) -> list[list[Hit]]:
        start = time.perf_counter()
        self.index.searching()
        with self._lock.read(wait):
            due = self._due(now)
            allowed = self.candidates(pred, context, due)
            hidden = self._hidden_iids(due) if allowed is None else None
            if self._superposed:
                ranked = [self._ranked(q[r], k, allowed, hidden, ef, context, due, wait) for r in range(len(q))]
            else:
                scores, iids = self._raw_search(q, k, allowed, hidden, ef, wait)
                ranked = [self._scored(q[r], scores[r], iids[r], context, due) for r in range(len(q))]
            hits = [self._hits(rows[:k]) for rows in ranked]
        if len(q) == 1 and allowed is None and ef is None:
            self._search_cost += 0.1 * (time.perf_counter() - start - self._search_cost)
        return hits

    def _raw_search(self, q: np.ndarray, k: int, allowed: np.ndarray | None, hidden: np.ndarray | None,
                    ef: int | None, wait: float = math.inf, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        if allowed is None:
            return self.index.search(q, k, exclude=hidden, ef=ef, nprobe=nprobe, wait=wait)
        live = max(self.index.size, 1)
        if len(allowed) <= EXACT_SEARCH_MAX or len(allowed) <= EXACT_SEARCH_SHARE * live:
            return self.index.exact_search(q, k, allowed)
        # HNSW needs a wider beam when the selector rejects most of what it visits.
        boost = int(min(1024, max(ef or self.spec.ef_search, k) * live / len(allowed)))
        return self.index.search(q, k, allowed=allowed, ef=max(boost, ef or 0), nprobe=nprobe)

    def _ranked(self, q: np.ndarray, k: int, allowed: np.ndarray | None, hidden: np.ndarray | None,
                ef: int | None, context: str | None, due: dict[str, Entry], wait: float = math.inf) -> list[Scored]:
        """Records ranked by Born score, exact with respect to the index (the threshold algorithm).

        A record's Born score never exceeds its best branch similarity, so once the k-th score
        among the records seen is at least the lowest similarity in the pool, no unseen record
        can enter the top k. Until then the pool widens."""
        limit = max(len(allowed) if allowed is not None else self.index.size, 1)
        first = pool = min(k * min(self._max_branches, 8), limit)
        born: dict[str, float] = {}
        nprobe = self.spec.nprobe
        ivf = self.spec.type == "ivf" and self.index.trained
        while True:
            scores, iids = self._raw_search(q[None, :], pool, allowed, hidden, ef, wait,
                                            nprobe if pool > first else None)
            ranked = self._scored(q, scores[0], iids[0], context, due, born)
            found = int((iids[0] >= 0).sum())
            if pool >= limit or (found < pool and not (ivf and nprobe < self.spec.nlist)):
                return ranked  # nothing is left unseen
            if len(ranked) >= k and ranked[k - 1][1] >= float(scores[0][found - 1]):
                return ranked
            # Deeper: HNSW's beam follows the pool (see _raw_search); IVF probes as many more
            # lists as the pool grew.
            pool = min(pool * 4, limit)
            nprobe = min(self.spec.nprobe * pool // first, self.spec.nlist)

    def _scored(self, q: np.ndarray, scores: np.ndarray, iids: np.ndarray, context: str | None,
                due: dict[str, Entry], born: dict[str, float] | None = None) -> list[Scored]:
        """(record, score, its best branch id) for the records owning these branches, best first.
        A superposed record scores Σ|α_i|²·sim(q, v_i) over its branches, or over the branches
        labelled ``context`` (renormalised) when a context is given. ``born`` keeps the scores
        already computed for this query."""
        # Plain Python on lists: right after a search has flushed the caches, each numpy call
        # costs ~10 µs, several times its usual cost.
        owners = self._owner.slots
        n = len(owners)
        rows = [(e.rid, s, iid) for s, iid in zip(scores.tolist(), iids.tolist())
                if 0 <= iid < n and (e := owners[iid]) is not None]
        if not self._superposed:  # a branch per record, and FAISS answers best first
            return rows
        seen: dict[str, tuple[float, int]] = {}
        for rid, s, iid in rows:
            if rid not in seen:
                seen[rid] = (s, iid)
        born = {} if born is None else born
        mixed, ids, probs = [], [], []  # records to score, their branch ids and probabilities
        for rid in seen:
            entry = self._entries[rid]
            if rid in born or len(entry.iids) < 2:
                continue
            if rid in due:
                entry = self._view(entry, True)
                if entry is None or len(entry.iids) < 2:
                    continue
            if context is None:
                b, p = entry.iids, entry.probs
            else:
                mask = np.fromiter((c == context for c in entry.contexts), bool, len(entry.contexts))
                b, p = entry.iids[mask], entry.probs[mask]
                if len(b) < 2 or not p.sum() > 0:  # zero amplitudes are refused; older data may hold them
                    continue
                p = p / p.sum()
            mixed.append(rid)
            ids.append(b)
            probs.append(p)
        if mixed:
            flat = np.concatenate(ids)
            sims = self._similarities(q, flat, scores, iids)
            starts = np.cumsum([0] + [len(b) for b in ids[:-1]])
            born.update(zip(mixed, np.add.reduceat(np.concatenate(probs) * sims, starts).tolist()))
        for rid, (_, iid) in seen.items():
            if rid in born:
                seen[rid] = (born[rid], iid)
        ranked = [(rid, s, iid) for rid, (s, iid) in seen.items()]
        ranked.sort(key=itemgetter(1), reverse=True)  # stable: ties keep FAISS's order
        return ranked

    def _similarities(self, q: np.ndarray, ids: np.ndarray, known_scores: np.ndarray,
                      known_ids: np.ndarray) -> np.ndarray:
        """sim(q, v) for the vectors ``ids``, reusing the scores a search already returned."""
        order = np.argsort(known_ids)
        sorted_ids = known_ids[order]
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        known = sorted_ids[at] == ids
        sims = np.empty(len(ids), np.float32)
        sims[known] = known_scores[order][at[known]]
        if not known.all():
            rest = ids[~known]
            sims[~known] = self.index.similarity(q[None, :], self.index.vectors(rest))[0]
        return sims

    def _hits(self, ranked: list[Scored]) -> list[Hit]:
        entries = self._entries
        return [Hit(rid, s, dict(entries[rid].metadata)) for rid, s, _ in ranked]

    # ------------------------------------------------------------------ tunneling
    async def build_regions(self, n_regions: int | None = None, seed: int = 0) -> int:
        """(Re)partition the vectors into tunneling regions and persist them. Returns how many.
        Without ``n_regions`` they are the IVF coarse centroids once IVF trains, else k-means
        with a count from the collection size; an explicit count is kept on later rebuilds."""
        self._check_open()
        if n_regions is not None and (isinstance(n_regions, bool) or not isinstance(n_regions, int)
                                      or not 1 <= n_regions <= tunnel.MAX_REGIONS):
            raise InvalidArgument(f"n_regions must be an integer in 1..{tunnel.MAX_REGIONS}", "invalid_argument")
        await self._storage.settle()
        await self._storage.run(self._build_regions_sync, n_regions, seed)
        await self._db.save_collection_config(self)
        return len(self.regions["centroids"])

    def _build_regions_sync(self, n_regions: int | None, seed: int) -> None:
        mark = self._iid_high
        ids = self.index.ids()
        if len(ids) < 2:
            raise InvalidArgument("tunneling regions need at least two stored vectors", "invalid_tunneling")
        rng = np.random.default_rng(seed)
        sample = ids if len(ids) <= tunnel.SAMPLE else rng.choice(ids, tunnel.SAMPLE, replace=False)
        coarse = self.index.coarse_centroids() if n_regions is None else None
        centroids, radii = tunnel.fit(self.index.vectors(np.sort(sample)),
                                      n_regions or tunnel.default_regions(len(ids)), self.metric, seed, coarse)
        regions = {"centroids": centroids, "radii": radii, "n": len(ids), "mark": mark,
                   "requested": n_regions, "seed": seed, "source": "kmeans" if coarse is None else "ivf"}
        with self._lock.write():  # every member placed once per build; writes then place their own
            self.regions = regions
            self._place_all()

    async def _fresh_regions(self) -> None:
        """Rebuild the regions when the data has moved since they were built (or IVF has trained)."""
        r = self.regions
        if tunnel.stale(r, size=self.index.size, written=self._iid_high - (r or {}).get("mark", 0),
                        ivf_ready=self.spec.type == "ivf" and self.index.trained):
            await self.build_regions(r.get("requested") if r else None, r.get("seed", 0) if r else 0)
        elif self._region_map is None:  # regions loaded with the config: place the members once
            await self._storage.run(self._place_all_locked)

    def _place_all_locked(self) -> None:
        with self._lock.write():
            if self._region_map is None:
                self._place_all()

    def _place_all(self) -> None:
        ids = self.index.ids()
        self._region_map = tunnel.RegionMap(self.regions, ids, self._vectors_of(ids))

    def _vectors_of(self, ids: np.ndarray) -> np.ndarray:
        return self.index.vectors(ids) if len(ids) else np.empty((0, self.dim), np.float32)

    def _tunnel_sync(self, q: np.ndarray, k: int, pred: Any, context: str | None, t: float,
                     seed: int | None, cap: int, now: float) -> list[Hit]:
        rng = np.random.default_rng(seed)
        with self._lock.read():
            due = self._due(now)
            allowed = self.candidates(pred, context, due)
            hidden = self._hidden_iids(due) if allowed is None else None
            near = self._ranked(q, k, allowed, hidden, None, context, due)[:k]
            regions = self._region_map
            home, probs = regions.entry_probabilities(q, t)
            draws = rng.random(len(probs))
            fan = min(self._max_branches, 8) if self._superposed else 1
            cand_s, cand_i = [], []
            for r in np.flatnonzero(draws < probs).tolist():
                if r == home:
                    continue
                ids, vecs = regions.vectors(r, self._vectors_of)
                if allowed is not None or hidden is not None:
                    keep = np.isin(ids, allowed) if allowed is not None else ~np.isin(ids, hidden)
                    ids, vecs = ids[keep], vecs[keep]
                if not len(ids):
                    continue
                sims = self.index.similarity(q[None, :], vecs)[0]
                top = np.argsort(-sims, kind="stable")[:cap * fan]
                cand_s.append(sims[top])
                cand_i.append(ids[top])
            merged = {rid: (s, iid) for rid, s, iid in near}
            if cand_i:
                for rid, s, iid in self._scored(q, np.concatenate(cand_s), np.concatenate(cand_i), context, due):
                    merged.setdefault(rid, (s, iid))
            ranked = sorted(((rid, s, iid) for rid, (s, iid) in merged.items()), key=itemgetter(1), reverse=True)
            keep = tunnel.select([regions.region_of.get(iid, home) for _, _, iid in ranked], home, k, cap)
            return self._hits([ranked[i] for i in keep])

    # ------------------------------------------------------------------ quantum primitives
    async def superpose(self, id: str, branches: list[tuple[Any, str | None, complex]],
                        metadata: dict[str, Any] | None = None, coherence_time: float | None = None) -> None:
        self._check_open()
        validation.check_id(id)
        parts = superposition.normalise_branches(branches, self.dim, self.metric)
        md = validation.check_metadata(metadata)
        expires = self._expiry_for(coherence_time)

        def write(ctx: WriteContext) -> None:
            old = self._read_doc(ctx.get, id)
            self._commit(ctx, {id: superposition.superposed(parts, md, expires, old)}, {id: old})

        await self._write(write)

    async def measure(self, id: str, context: str | None = None, collapse: bool = False,
                      seed: int | None = None) -> Measurement:
        self._check_open()
        validation.check_id(id)
        validation.check_context(context)
        now = self._now()
        # Every draw is made here, before the write: a write may run twice (the map grows).
        rng = np.random.default_rng(seed)
        u = float(rng.random())

        def result(doc: Doc, i: int, p: float) -> Measurement:
            return Measurement(doc["b"][i][2], records.branch_vector(doc, i), p)

        if not collapse:
            def read(txn: Any) -> Measurement:
                doc = self._must_see(self._reader(txn), id, now)
                return result(doc, *measurement.choose(doc, context, u))
            return await self._storage.read(read)

        partner_seed = int(rng.integers(2**63))

        def write(ctx: WriteContext) -> Measurement:
            doc = self._must_see(ctx.get, id, now)
            i, p = measurement.choose(doc, context, u)
            partners = self._partners(ctx.get, id, now)
            draws = np.random.default_rng(partner_seed).random(len(partners))
            self._commit(ctx, measurement.collapse(id, doc, i, partners, draws))
            return result(doc, i, p)

        return await self._write(write)

    async def entangle(self, group: str, ids: list[str], strength: float = 1.0) -> None:
        """Add ``ids`` to ``group`` (created with ``strength``; an existing group keeps its own)."""
        self._check_open()
        validation.check_name(group, "group")
        ids = validation.check_ids(ids)
        if not ids:
            raise InvalidArgument("entangle needs ids", "invalid_argument")
        strength = entanglement.check_strength(strength)
        now = self._now()

        def write(ctx: WriteContext) -> None:
            for rid in ids:
                self._must_see(ctx.get, rid, now)
            old = self._group(ctx.get, group)
            self._put_group(ctx, group, old, entanglement.joined(old, group, ids, strength))

        await self._write(write)

    async def disentangle(self, group: str, ids: list[str] | None = None) -> None:
        """Remove ``ids`` from ``group`` (every member for None); a group left with one dissolves."""
        self._check_open()
        validation.check_name(group, "group")
        if ids is not None:
            ids = validation.check_ids(ids, unique=False)

        def write(ctx: WriteContext) -> None:
            old = self._group(ctx.get, group)
            if old is None:
                raise NotFound(f"group {group!r} does not exist in {self.name!r}", "not_found")
            self._put_group(ctx, group, old, entanglement.without(old, ids))

        await self._write(write)

    async def update(self, id: str, vector: Any) -> None:
        """Replace the record's vector (its most probable branch) and move every partner by
        ρ_ab·(new − old), renormalised to unit length under the cosine metric, atomically."""
        self._check_open()
        validation.check_id(id)
        new = validation.check_vectors(vector, self.dim, metric=self.metric, n=1)[0]
        now = self._now()

        def write(ctx: WriteContext) -> None:
            doc = self._must_see(ctx.get, id, now)
            self._commit(ctx, entanglement.update(id, doc, new, self._partners(ctx.get, id, now), self.metric))

        await self._write(write)

    async def correlation(self, id_a: str, id_b: str) -> float:
        """ρ_ab = 1 − Π(1 − ρ_g) over the groups holding both; 1 for a record with itself."""
        self._check_open()
        validation.check_id(id_a)
        validation.check_id(id_b)
        now = self._now()

        def read(txn: Any) -> float:
            get = self._reader(txn)
            for rid in (id_a, id_b):
                self._must_see(get, rid, now)
            groups = [self._group(get, n) for n in self._group_names(get, id_a)]
            return entanglement.correlation(id_a, id_b, [g for g in groups if g is not None])

        return await self._storage.read(read)

    async def sweep(self) -> int:
        """Make decoherence durable: delete (or collapse) every expired record. Returns how many."""
        now = self._now()
        due = list(self._due(now))
        if not due or self.dropped:
            return 0

        def write(ctx: WriteContext) -> int:
            olds = {rid: self._read_doc(ctx.get, rid) for rid in due}
            olds = {rid: d for rid, d in olds.items() if d is not None and decoherence.expired(d, now)}
            self._commit(ctx, {rid: decoherence.decohered(d, now, self.on_decohere) for rid, d in olds.items()},
                         olds)
            return len(olds)

        return await self._write(write)
