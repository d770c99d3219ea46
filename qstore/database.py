"""The embedded database: ``await qstore.Database.open(path)``."""
from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from qstore import validation
from qstore.collection import SNAPSHOT_EVERY, Collection
from qstore.errors import AlreadyExists, Conflict, InsufficientStorage, InvalidArgument, NotFound
from qstore.index.spec import IndexSpec, check_metric
from qstore.states import quantum_state
from qstore.storage import Storage, WriteContext, codec

if TYPE_CHECKING:
    from qstore.check import CheckReport
    from qstore.stores.qdrant_collection import StoreCollection
    from qstore.stores.registry import QdrantCatalog

log = logging.getLogger(__name__)

_COL = b"col:"
_NEXT_CID = b"next_cid"
_QDRANT = b"qdrant"  # the Qdrant deployment this database's Qdrant collections live in (no key)
STORES = ("lmdb", "qdrant")


class Database:
    """Vectors, datasets, checkpoints and quantum states in one LMDB directory.

    ``clock`` (unix seconds) is injectable so decoherence can be tested without sleeping.
    ``sweep_interval`` is how often expired records are removed for good (None: never, call
    ``sweep()`` yourself).

    ``store`` is where new collections keep their records: ``"lmdb"`` (LMDB + FAISS, the
    default and the fastest) or ``"qdrant"`` (a Qdrant deployment at ``qdrant_url``, or the
    client's in-process local mode under ``<path>/qdrant`` when no URL is given; see
    docs/STORES.md). Datasets, checkpoints, states and configuration stay in LMDB.
    """

    def __init__(self, storage: Storage, clock: Callable[[], float], snapshot_every: int, store: str = "lmdb"):
        self._storage = storage
        self.clock = clock
        self.snapshot_every = snapshot_every
        self.store = store
        self._collections: dict[str, Collection] = {}
        self._remote: dict[str, StoreCollection] = {}  # collections whose records live in Qdrant
        self._qdrant: QdrantCatalog | None = None
        self._sweeper: asyncio.Task | None = None
        self._closed = False

    @property
    def path(self) -> str:
        return self._storage.path

    @classmethod
    async def open(cls, path: str, *, sync: bool = True, map_size: int = 1 << 30,
                   clock: Callable[[], float] = time.time, sweep_interval: float | None = 1.0,
                   snapshot_every: int = SNAPSHOT_EVERY, store: str = "lmdb", qdrant_url: str | None = None,
                   qdrant_api_key: str | None = None, qdrant_options: dict[str, Any] | None = None) -> Database:
        """``qdrant_options``: ``prefix`` of the Qdrant collection names, and ``shard_number``,
        ``replication_factor``, ``write_consistency_factor`` for the collections created."""
        if store not in STORES:
            raise InvalidArgument(f"store must be one of {', '.join(STORES)}, got {store!r}", "invalid_store")
        loop = asyncio.get_running_loop()
        storage = await loop.run_in_executor(None, lambda: Storage(path, sync=sync, map_size=map_size))
        db = cls(storage, clock, snapshot_every, store)
        try:
            await storage.read(db._load)
            await db._open_qdrant(qdrant_url, qdrant_api_key or os.environ.get("QSTORE_QDRANT_API_KEY"),
                                  qdrant_options or {})
        except BaseException:
            if db._qdrant is not None:
                await db._qdrant.close()
            # Release the environment and threads, or retrying the open in this process fails.
            await loop.run_in_executor(None, storage.close)
            raise
        if sweep_interval:
            db._sweeper = asyncio.create_task(db._sweep_forever(sweep_interval), name="qstore-sweeper")
        log.info("opened %s: %d collection(s)", path, len(db._collections))
        return db

    def _load(self, txn: Any) -> None:
        cur = self._storage.cursor(txn, "meta")
        if cur.set_range(_COL):
            configs = [codec.unpack(v) for k, v in cur if k.startswith(_COL)]
            for config in configs:
                col = Collection(self, config)
                col.load(txn)
                self._collections[col.name] = col
        from qstore.check import stray_index_files
        for stray in stray_index_files(self.path, {c.cid for c in self._collections.values()}):
            log.info("removing %s: an interrupted snapshot or a dropped collection's", stray)
            os.remove(stray)

    async def _open_qdrant(self, url: str | None, api_key: str | None, options: dict[str, Any]) -> None:
        """Connect to the Qdrant deployment named now, or remembered from an earlier open, or
        (store="qdrant" alone) local mode under this directory; and load its collections."""
        raw = await self._storage.read(lambda txn: self._storage.get(txn, "meta", _QDRANT))
        remembered = codec.unpack(raw) if raw else None
        if url is None and remembered is not None:
            url = remembered["url"]
        if url is None and self.store == "qdrant":
            url = os.path.join(self.path, "qdrant")
        if url is None:
            return
        from qstore.stores.registry import QdrantCatalog
        unknown = set(options) - {"prefix", "shard_number", "replication_factor", "write_consistency_factor"}
        if unknown:
            raise InvalidArgument(f"unknown qdrant option(s) {sorted(unknown)}", "invalid_argument")
        self._qdrant = QdrantCatalog(url, api_key, **options)
        await self._qdrant.start()
        if remembered is None or remembered["url"] != url:
            await self._storage.write(lambda ctx: ctx.put("meta", _QDRANT, codec.pack({"url": url})))
        for name in await self._qdrant.names():
            await self._remote_collection(name)

    async def _remote_collection(self, name: str) -> StoreCollection | None:
        """The Qdrant collection ``name`` from the shared catalog (another server may have made it)."""
        if self._qdrant is None:
            return None
        config = await self._qdrant.load(name)
        if config is None:
            self._remote.pop(name, None)
            return None
        from qstore.stores.qdrant_collection import StoreCollection
        col = self._remote.get(name)
        if col is None:
            col = self._remote[name] = StoreCollection(self._qdrant, self._qdrant.store(config), config, self.clock)
        else:
            col.regions = config.get("regions")
        return col

    async def close(self) -> None:
        """Snapshot the indexes, flush and close LMDB. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except (asyncio.CancelledError, Exception):
                pass
        if self._qdrant is not None:
            await self._qdrant.close()
        await self._storage.settle()
        loop = asyncio.get_running_loop()
        for col in self._collections.values():
            if col._unsnapshotted or col.snapshot_seq == 0:
                await loop.run_in_executor(None, col.snapshot)
        try:
            await self._prune_changes()
        except InsufficientStorage:  # a full disk must not keep the environment open
            log.warning("closing %s on a full disk: the change history stays until the next open", self.path)
        await loop.run_in_executor(None, self._storage.close)

    # ------------------------------------------------------------------ upkeep
    async def check(self, repair: bool = False) -> CheckReport:
        """Verify the index, summaries, expiry, entanglement groups and regions of every collection
        against the LMDB records; with ``repair=True`` rebuild whatever derived state is wrong."""
        from qstore.check import check
        return await check(self, repair)

    async def backup(self, path: str) -> dict[str, Any]:
        """Copy this live database to the new directory ``path`` (writers keep going); returns the
        backup's manifest. Bring it back with ``Database.restore``."""
        from qstore import backup
        await self._storage.settle()
        loop = asyncio.get_running_loop()
        for col in list(self._collections.values()):  # fresh snapshots make the restore quick
            if col._unsnapshotted or col.snapshot_seq == 0:
                await loop.run_in_executor(None, col.snapshot)
        return await loop.run_in_executor(None, backup.take, self, path)

    @classmethod
    async def restore(cls, backup_path: str, path: str, **open_args: Any) -> Database:
        """Verify a backup, copy it to the new directory ``path`` and open it there."""
        from qstore import backup
        await asyncio.get_running_loop().run_in_executor(None, backup.restore, backup_path, path)
        return await cls.open(path, **open_args)

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ collections
    async def create_collection(self, name: str, dim: int, metric: str = "cosine",
                                index: dict[str, Any] | None = None, coherence_time: float | None = None,
                                on_decohere: str = "delete", store: str | None = None) -> Collection | StoreCollection:
        """``store`` (default: the database's) is where the records live: "lmdb" or "qdrant"."""
        validation.check_name(name)
        dim = validation.check_dim(dim)
        check_metric(metric)
        spec = IndexSpec.parse(index)
        coherence_time = validation.check_coherence_time(coherence_time)
        if on_decohere not in ("delete", "collapse"):
            raise InvalidArgument("on_decohere must be 'delete' or 'collapse'", "invalid_argument")
        store = self.store if store is None else store
        if store not in STORES:
            raise InvalidArgument(f"store must be one of {', '.join(STORES)}, got {store!r}", "invalid_store")
        if name in self._collections or await self._remote_collection(name) is not None:
            raise AlreadyExists(f"collection {name!r} exists; use db.collection({name!r})", "collection_exists")
        if store == "qdrant":
            return await self._create_remote(name, dim, metric, spec, coherence_time, on_decohere)

        def write(ctx: WriteContext) -> Collection:
            if ctx.get("meta", _COL + name.encode()) is not None:
                raise AlreadyExists(f"collection {name!r} exists; use db.collection({name!r})",
                                    "collection_exists")
            raw = ctx.get("meta", _NEXT_CID)
            cid = codec.read_u32(raw) if raw else 1
            ctx.put("meta", _NEXT_CID, codec.u32(cid + 1))
            col = Collection(self, {"name": name, "cid": cid, "dim": dim, "metric": metric,
                                    "index": spec.to_dict(), "coherence_time": coherence_time,
                                    "on_decohere": on_decohere})
            ctx.put("meta", _COL + name.encode(), codec.pack(col.config))
            ctx.after_commit(lambda: self._collections.__setitem__(name, col))
            return col

        return await self._storage.write(write)

    async def _create_remote(self, name: str, dim: int, metric: str, spec: IndexSpec,
                             coherence_time: float | None, on_decohere: str) -> StoreCollection:
        if self._qdrant is None:  # first Qdrant collection of an LMDB database: local mode here
            await self._open_qdrant(os.path.join(self.path, "qdrant"), None, {})
        assert self._qdrant is not None
        if spec.type == "ivf":
            raise InvalidArgument("the Qdrant store indexes with HNSW (or flat: exact search); ivf is "
                                  "LMDB-only", "invalid_index")
        config = {"name": name, "dim": dim, "metric": metric, "index": spec.to_dict(),
                  "coherence_time": coherence_time, "on_decohere": on_decohere, "regions": None,
                  "store": "qdrant"}
        await self._qdrant.create(config)
        col = await self._remote_collection(name)
        assert col is not None
        return col

    async def collection(self, name: str) -> Collection | StoreCollection:
        col: Collection | StoreCollection | None = self._collections.get(name)
        if col is None:
            col = self._remote.get(name) or await self._remote_collection(name)
        if col is None:
            raise NotFound(f"collection {name!r} does not exist; create it with create_collection",
                           "collection_not_found")
        return col

    async def list_collections(self) -> list[str]:
        remote = await self._qdrant.names() if self._qdrant is not None else []
        return sorted(set(self._collections) | set(remote))

    async def drop_collection(self, name: str) -> None:
        col = await self.collection(name)
        if not isinstance(col, Collection):
            assert self._qdrant is not None
            await self._qdrant.drop(name)
            col.dropped = True
            self._remote.pop(name, None)
            return

        def write(ctx: WriteContext) -> None:
            ctx.delete("meta", _COL + name.encode())
            prefix = codec.u32(col.cid)
            for table in ("records", "rev", "groups"):
                cur = ctx.cursor(table)
                while cur.set_range(prefix) and cur.key().startswith(prefix):
                    cur.delete()
            cur = ctx.cursor("expiry")
            for key in [k for k, _ in cur if codec.read_expiry_key(k)[1] == col.cid]:
                ctx.delete("expiry", key)
            ctx.after_commit(lambda: self._forget(col))

        await self._storage.write(write)

    def _forget(self, col: Collection) -> None:
        col.dropped = True
        self._collections.pop(col.name, None)
        try:
            os.remove(col.snapshot_path)
        except FileNotFoundError:
            pass

    async def save_collection_config(self, col: Collection) -> None:
        await self._storage.write(lambda ctx: ctx.put("meta", _COL + col.name.encode(), codec.pack(col.config)))

    # ------------------------------------------------------------------ decoherence
    async def sweep(self) -> int:
        """Remove (or collapse) every record whose coherence time has passed. Returns how many."""
        cols: list[Collection | StoreCollection] = [*self._collections.values(), *self._remote.values()]
        return sum([await col.sweep() for col in cols])

    async def _sweep_forever(self, interval: float) -> None:
        """Background upkeep: expire records, and drop change history that snapshots cover."""
        pruned_at = self._snapshots()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
                if self._snapshots() != pruned_at:
                    pruned_at = self._snapshots()
                    await self._prune_changes()
            except Exception:
                log.exception("background upkeep failed; will retry")

    def _snapshots(self) -> tuple[int, ...]:
        return tuple(c.snapshot_seq for c in self._collections.values())

    async def _prune_changes(self) -> None:
        """Drop the change sequence that every snapshot already contains."""

        def write(ctx: WriteContext) -> None:
            # In the writer thread, so no change commits while the bound is taken. A collection
            # keeps every change after its snapshot, graphed or not; waiting here for the graph
            # work instead held every write back for seconds beside a stream of reads.
            dirty = [c.snapshot_seq for c in self._collections.values()
                     if max(c.changed_seq, c.index.applied_seq) > c.snapshot_seq]
            upto = min(dirty) if dirty else self._storage.last_seq
            cur = ctx.cursor("changes")
            while cur.first() and codec.read_u64(cur.key()) <= upto:
                cur.delete()

        await self._storage.write(write)

    # ------------------------------------------------------------------ quantum states
    async def put_state(self, id: str, statevector: Any) -> None:
        validation.check_id(id)
        psi = quantum_state.check_state(statevector)
        data = codec.pack({"n": int(len(psi)).bit_length() - 1, "v": psi})
        await self._storage.write(lambda ctx: ctx.put("states", id.encode(), data))

    async def get_state(self, id: str) -> np.ndarray:
        validation.check_id(id)
        raw = await self._storage.read(lambda txn: self._storage.get(txn, "states", id.encode()))
        if raw is None:
            raise NotFound(f"state {id!r} does not exist; store it with put_state", "not_found")
        return codec.unpack(raw)["v"]

    async def delete_state(self, id: str) -> None:
        validation.check_id(id)

        def write(ctx: WriteContext) -> None:
            if not ctx.delete("states", id.encode()):
                raise NotFound(f"state {id!r} does not exist", "not_found")

        await self._storage.write(write)

    async def measure_state(self, id: str, shots: int = 1000, qubits: list[int] | None = None,
                            seed: int | None = None) -> dict[str, int]:
        shots = quantum_state.check_shots(shots)
        psi = await self.get_state(id)
        qubits = quantum_state.check_qubits(qubits, len(psi).bit_length() - 1)
        rng = np.random.default_rng(seed)
        return await asyncio.get_running_loop().run_in_executor(
            None, quantum_state.measure, psi, shots, qubits, rng)

    # ------------------------------------------------------------------ datasets
    async def import_dataset(self, name: str, X: Any, y: Any) -> Collection:
        """Store a labelled dataset as a collection (one record per row, ``label`` metadata)."""
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y)
        if X.ndim != 2 or len(X) == 0:
            raise InvalidArgument("X must be a non-empty 2-D array (samples × features)", "empty_dataset")
        if y.shape != (len(X),):
            raise InvalidArgument(f"y must have one label per row: {y.shape} vs {len(X)} rows", "invalid_labels")
        if not np.isfinite(X).all():
            raise InvalidArgument("X contains NaN or Inf", "invalid_features")
        labels = [v.item() for v in y]
        if any(isinstance(v, float) and not np.isfinite(v) for v in labels):
            raise InvalidArgument("y contains NaN or Inf", "invalid_labels")
        col = await self.create_collection(name, dim=X.shape[1], metric="l2", index={"type": "flat"}, store="lmdb")
        ids = [f"{i:09d}" for i in range(len(X))]
        for start in range(0, len(X), 4096):
            sl = slice(start, start + 4096)
            await col.upsert(ids[sl], X[sl].astype(np.float32), [{"label": v} for v in labels[sl]])
        info = {"collection": name, "n": len(X), "n_features": X.shape[1],
                "classes": sorted(set(labels)) if y.dtype.kind in "iub" else None}
        await self._storage.write(lambda ctx: ctx.put("datasets", name.encode(), codec.pack(info)))
        return col

    async def _document(self, table: str, key: str, missing: str) -> dict[str, Any]:
        raw = await self._storage.read(lambda txn: self._storage.get(txn, table, key.encode()))
        if raw is None:
            raise NotFound(missing, "not_found")
        return codec.unpack(raw)

    async def dataset_info(self, name: str) -> dict[str, Any]:
        return await self._document("datasets", name,
                                    f"dataset {name!r} does not exist; create it with import_dataset")

    async def list_datasets(self) -> list[str]:
        def scan(txn: Any) -> list[str]:
            return [k.decode() for k, _ in self._storage.cursor(txn, "datasets")]
        return await self._storage.read(scan)

    async def load_dataset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """All rows of a dataset in insertion order, features as stored (float32 precision)."""
        info = await self.dataset_info(name)
        col = await self.collection(info["collection"])
        xs, ys, cursor = [], [], None
        while True:
            page = await col.scroll(limit=4096, cursor=cursor)
            unlabelled = next((r.id for r in page.records if "label" not in r.metadata), None)
            if unlabelled is not None:  # written into the dataset's collection by hand
                raise Conflict(f"dataset {name!r}: record {unlabelled!r} of its collection has no label")
            xs.extend(r.vector for r in page.records)
            ys.extend(r.metadata["label"] for r in page.records)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        return np.asarray(xs, dtype=np.float64), np.asarray(ys)

    # ------------------------------------------------------------------ federated participants
    async def register_participant(self, name: str, url: str, tags: list[str] | None = None) -> dict[str, Any]:
        """Add (or re-address) a federated participant; its health and breaker survive re-registration."""
        validation.check_name(name, "participant")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise InvalidArgument(f"participant url must be http(s), got {url!r}", "invalid_argument")
        if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
            raise InvalidArgument("participant tags must be a list of strings", "invalid_argument")
        key = name.encode()

        def write(ctx: WriteContext) -> dict[str, Any]:
            raw = ctx.get("participants", key)
            old = codec.unpack(raw) if raw is not None else {
                "status": "unknown", "last_seen": None, "latency_s": None, "failures": 0,
                "breaker": {"state": "closed", "failures": 0, "opened_at": None}, "registered_at": self.clock()}
            doc = {**old, "name": name, "url": url.rstrip("/"), "tags": sorted(set(tags or []))}
            ctx.put("participants", key, codec.pack(doc))
            return doc
        return await self._storage.write(write)

    async def list_participants(self) -> list[dict[str, Any]]:
        """Registered participants by name: url, tags, status, last_seen, latency_s, failures, breaker."""
        def scan(txn: Any) -> list[dict[str, Any]]:
            return [codec.unpack(raw) for _k, raw in self._storage.cursor(txn, "participants")]
        return await self._storage.read(scan)

    async def remove_participant(self, name: str) -> None:
        def write(ctx: WriteContext) -> None:
            if not ctx.delete("participants", name.encode()):
                raise NotFound(f"participant {name!r} is not registered", "not_found")
        await self._storage.write(write)

    async def update_participant(self, name: str, health: dict[str, Any]) -> None:
        """The coordinator's record of a round: status, last_seen, latency_s, failures, breaker."""
        unknown = set(health) - {"status", "last_seen", "latency_s", "failures", "breaker"}
        if unknown:
            raise InvalidArgument(f"unknown participant field(s) {sorted(unknown)}", "unknown_field")

        def write(ctx: WriteContext) -> None:
            raw = ctx.get("participants", name.encode())
            if raw is None:  # removed while a run was using it: nothing to record
                return
            ctx.put("participants", name.encode(), codec.pack({**codec.unpack(raw), **health}))
        await self._storage.write(write)

    # ------------------------------------------------------------------ checkpoints
    async def save_checkpoint(self, doc: dict[str, Any], id: str | None = None) -> str:
        cid = id or f"ckpt-{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        validation.check_id(cid)
        data = codec.pack({**doc, "id": cid, "created_at": self.clock()})
        await self._storage.write(lambda ctx: ctx.put("checkpoints", cid.encode(), data))
        return cid

    async def load_checkpoint(self, id: str) -> dict[str, Any]:
        return await self._document("checkpoints", id, f"checkpoint {id!r} does not exist; see list_checkpoints()")

    async def list_checkpoints(self, run: str | None = None) -> list[dict[str, Any]]:
        """Checkpoint summaries (no parameters), oldest first."""
        def scan(txn: Any) -> list[dict[str, Any]]:
            out = []
            for _k, raw in self._storage.cursor(txn, "checkpoints"):
                doc = codec.unpack(raw)
                if run is None or doc.get("run") == run:
                    out.append({k: v for k, v in doc.items() if not isinstance(v, (np.ndarray, bytes, dict))
                                or k == "metrics"})
            return sorted(out, key=lambda d: d["created_at"])
        return await self._storage.read(scan)

    async def delete_checkpoint(self, id: str) -> None:
        def write(ctx: WriteContext) -> None:
            if not ctx.delete("checkpoints", id.encode()):
                raise NotFound(f"checkpoint {id!r} does not exist", "not_found")
        await self._storage.write(write)
