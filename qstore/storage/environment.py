"""The LMDB environment: named tables, a read thread pool and the group-commit writer.

Every mutation goes through ``Storage.write(fn)``: ``fn(ctx)`` runs inside a nested
transaction of a shared batch transaction, so a failing call changes nothing while its
neighbours in the batch still commit. The callers' awaits resolve only after the batch
commits (fsync when ``sync=True``): an acknowledged write is durable.

What a read must see of a batch is published by ``after_commit`` hooks, in the writer
thread before the callers are answered, so a caller always reads its own writes. Slow
derived work (building FAISS graphs) runs in ``apply_later`` hooks on a separate applier
thread, which nobody waits for but ``settle``; at most ``MAX_APPLY_LAG`` batches may wait
for it before writers are held back.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import mmap
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import lmdb

from qstore import runtime
from qstore.errors import InsufficientStorage
from qstore.storage import codec

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLES = (
    "meta",         # collection configs, counters, last change sequence
    "records",      # cid+id -> record document
    "rev",          # cid+internal id -> record id (FAISS label back to the record)
    "changes",      # seq -> {cid, added, removed}: what snapshots replay
    "expiry",       # expires_at+cid+id -> b"" (time-ordered for the sweeper)
    "groups",       # cid+group -> entanglement group
    "datasets",     # dataset name -> {collection, n_features, classes}
    "checkpoints",  # checkpoint id -> checkpoint document
    "states",       # state id -> quantum state document
    "participants", # federated participant name -> {url, tags, health, breaker}
)
LAST_SEQ_KEY = b"last_seq"
MAX_BATCH = 512
# Committed batches whose index work may wait behind the batch being indexed. One keeps the
# next batch's commit overlapping this one's indexing (bulk loads ran as fast as with two),
# and beside readers it holds the exactly searched fresh set to two batches rather than three
# (reads beside a steady 500-vector stream +4 %).
MAX_APPLY_LAG = 1


class _ResizeGate:
    """Readers share it; growing the map takes it alone (LMDB forbids resizing under open txns)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._resizing = False

    def enter(self) -> None:
        with self._cond:
            while self._resizing:
                self._cond.wait()
            self._readers += 1

    def leave(self) -> None:
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def resize(self, env: lmdb.Environment, new_size: int) -> None:
        with self._cond:
            self._resizing = True
            while self._readers:
                self._cond.wait()
            try:
                env.set_mapsize(new_size)
            finally:
                self._resizing = False
                self._cond.notify_all()


class WriteContext:
    """What a write function sees: its transaction, the change log and post-commit hooks."""

    def __init__(self, storage: Storage, txn: lmdb.Transaction, seq: int):
        self.storage = storage
        self.txn = txn
        self.seq = seq
        self._hooks: list[Callable[[], None]] = []
        self._deferred: list[Callable[[], None]] = []

    def get(self, table: str, key: bytes) -> bytes | None:
        return self.txn.get(key, db=self.storage.tables[table])

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self.txn.put(key, value, db=self.storage.tables[table])

    def delete(self, table: str, key: bytes) -> bool:
        return self.txn.delete(key, db=self.storage.tables[table])

    def cursor(self, table: str) -> lmdb.Cursor:
        return self.txn.cursor(db=self.storage.tables[table])

    def log_change(self, cid: int, added: list[int], removed: list[int]) -> int:
        """Append to the change sequence; snapshots replay from it after a crash."""
        self.seq += 1
        self.put("changes", codec.u64(self.seq), codec.pack({"c": cid, "a": added, "r": removed}))
        return self.seq

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` in the writer thread after the commit, before the caller is answered:
        what reads must see of this write."""
        self._hooks.append(hook)

    def apply_later(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` on the applier thread after the commit, in commit order: background
        work that no read waits for (``settle`` does)."""
        self._deferred.append(hook)


class _Job:
    __slots__ = ("fn", "loop", "future")

    def __init__(self, fn: Callable[[WriteContext], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future):
        self.fn, self.loop, self.future = fn, loop, future


class Storage:
    """One LMDB environment per database directory."""

    def __init__(self, path: str, *, sync: bool = True, map_size: int = 1 << 30, read_threads: int | None = None):
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.env = lmdb.open(
            os.path.join(path, "lmdb"), subdir=True, map_size=map_size, max_dbs=len(TABLES) + 2,
            sync=sync, metasync=sync, max_readers=512, readahead=False,
        )
        try:
            self.tables = {name: self.env.open_db(name.encode()) for name in TABLES}
            with self.env.begin() as txn:
                raw = txn.get(LAST_SEQ_KEY, db=self.tables["meta"])
        except BaseException as exc:
            self.env.close()  # or this process could never open the directory again
            if _out_of_space(exc):  # creating the tables of a new database on a full disk
                raise InsufficientStorage(f"cannot create the database in {path}: {exc}") from None
            raise
        self.last_seq = codec.read_u64(raw) if raw else 0
        self._gate = _ResizeGate()
        self.read_threads = read_threads or runtime.config().storage_threads
        self.pool = ThreadPoolExecutor(max_workers=self.read_threads,
                                       thread_name_prefix="qstore-read")
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write_loop, name="qstore-writer", daemon=True)
        # Deferred hooks (FAISS adds) run on their own thread so the next batch's LMDB work
        # overlaps this batch's indexing; the bound makes writers wait when indexing lags.
        self._applies: queue.Queue[list[Callable[[], None]] | None] = queue.Queue(maxsize=MAX_APPLY_LAG)
        self._applier = threading.Thread(target=self._apply_loop, name="qstore-applier", daemon=True)
        self._queued = self._applied = 0  # batches handed to / finished by the applier
        self._applied_cond = threading.Condition()
        self._closed = False
        self._writer.start()
        self._applier.start()

    # -- reads -------------------------------------------------------------
    def read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        self._gate.enter()
        try:
            with self.env.begin(buffers=False) as txn:
                return fn(txn, *args)
        finally:
            self._gate.leave()

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(txn, *args)`` in a read transaction on the thread pool."""
        return await self.run(self.read_sync, fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run CPU work (a FAISS search, a simulation) off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    @property
    def settled(self) -> bool:
        """True when no acknowledged write is still waiting for its deferred hooks."""
        return self._applied >= self._queued

    def wait_applied(self, target: int | None = None) -> None:
        target = self._queued if target is None else target
        if self._applied < target:
            with self._applied_cond:
                self._applied_cond.wait_for(lambda: self._applied >= target)

    async def settle(self) -> None:
        """Wait until every write acknowledged so far has been applied."""
        if not self.settled:
            await asyncio.get_running_loop().run_in_executor(self.pool, self.wait_applied, self._queued)

    def get(self, txn: lmdb.Transaction, table: str, key: bytes) -> bytes | None:
        return txn.get(key, db=self.tables[table])

    def cursor(self, txn: lmdb.Transaction, table: str) -> lmdb.Cursor:
        return txn.cursor(db=self.tables[table])

    # -- writes ------------------------------------------------------------
    async def write(self, fn: Callable[[WriteContext], T]) -> T:
        """Run ``fn(ctx)`` in the writer thread; resolves once the batch is durable."""
        if self._closed:
            from qstore.errors import Unavailable
            raise Unavailable("the database is closed; open it again")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put(_Job(fn, loop, fut))
        return await fut

    def _write_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[_Job]) -> None:
        while True:
            outcomes: list[tuple[bool, Any]] = []
            hooks: list[Callable[[], None]] = []
            deferred: list[Callable[[], None]] = []
            seq = self.last_seq
            txn = None
            try:  # every failure, even of begin, answers the batch: the writer thread must live on
                txn = self.env.begin(write=True)
                for job in batch:
                    child = self.env.begin(write=True, parent=txn)
                    ctx = WriteContext(self, child, seq)
                    try:
                        result = job.fn(ctx)
                    except lmdb.MapFullError:
                        child.abort()
                        raise
                    except BaseException as exc:  # the caller gets it; the batch goes on
                        child.abort()
                        outcomes.append((False, exc))
                        continue
                    child.commit()
                    seq = ctx.seq
                    hooks.extend(ctx._hooks)
                    deferred.extend(ctx._deferred)
                    outcomes.append((True, result))
                if seq != self.last_seq:
                    txn.put(LAST_SEQ_KEY, codec.u64(seq), db=self.tables["meta"])
                txn.commit()
                self.last_seq = seq
                break
            except lmdb.MapFullError:
                txn.abort()  # type: ignore[union-attr]  # MapFull comes from inside the transaction
                try:
                    self._grow()
                except InsufficientStorage as exc:
                    outcomes, hooks, deferred = [(False, exc)] * len(batch), [], []
                    break
            except BaseException as exc:
                if txn is not None:
                    txn.abort()
                if _out_of_space(exc):
                    # Nothing of the batch committed; LMDB stays usable, so the next batch
                    # succeeds as soon as space returns, and reads go on meanwhile.
                    log.error("write batch refused, storage is full: %s", exc)
                    exc = InsufficientStorage(f"the disk under {self.path} refused the write ({exc}): it is "
                                              "full or failing. Nothing was written; free space and retry.")
                else:
                    log.exception("write batch failed")
                outcomes = [(False, exc)] * len(batch)
                hooks, deferred = [], []
                break
        _run_hooks(hooks)
        if deferred:
            self._queued += 1  # before answering: a settle issued after the answer waits for it
            self._applies.put(deferred)
        for job, (ok, value) in zip(batch, outcomes):
            job.loop.call_soon_threadsafe(_settle, job.future, ok, value)

    def _grow(self) -> None:
        """Double the map. LMDB unmaps before it maps the larger size and is left without a map
        if that fails, so the new size is first reserved here: a refusal is InsufficientStorage."""
        old = self.env.info()["map_size"]
        new = old * 2
        try:
            mmap.mmap(-1, new, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ).close()
        except (OSError, ValueError, OverflowError) as exc:
            log.error("LMDB map full at %d MiB and cannot grow: %s", old >> 20, exc)
            raise InsufficientStorage(f"the database map is full at {old >> 20} MiB and cannot grow to "
                                      f"{new >> 20} MiB ({exc}); nothing was written") from None
        log.info("LMDB map full; growing map to %d MiB", new >> 20)
        try:
            self._gate.resize(self.env, new)
        except lmdb.Error as exc:
            log.error("growing the LMDB map to %d MiB failed: %s", new >> 20, exc)
            raise InsufficientStorage(f"the database map could not grow to {new >> 20} MiB ({exc}); "
                                      "nothing was written") from None

    def _apply_loop(self) -> None:
        while (hooks := self._applies.get()) is not None:
            _run_hooks(hooks)
            with self._applied_cond:
                self._applied += 1
                self._applied_cond.notify_all()
            if self._applies.empty():  # the end of a burst of writes: its buffers are free now
                runtime.trim_heap()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        self._applies.put(None)
        self._applier.join()
        self.pool.shutdown(wait=True)
        self.env.sync(True)
        self.env.close()


_FULL = tuple(os.strerror(e) for e in (errno.ENOSPC, errno.EDQUOT, errno.EIO))


def _out_of_space(exc: BaseException) -> bool:
    """LMDB reports a full disk as ENOSPC, or as EIO when a page write comes up short."""
    if isinstance(exc, (lmdb.DiskError, lmdb.MapFullError)):
        return True
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, lmdb.Error) and any(m in str(exc) for m in _FULL)


def scan(cur: lmdb.Cursor, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The (key, value) pairs of a table whose keys start with ``prefix``, in key order."""
    if cur.set_range(prefix):
        for key, raw in cur:
            if not key.startswith(prefix):
                return
            yield key, raw


def _run_hooks(hooks: list[Callable[[], None]]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # durable already; replay on the next open repairs derived state
            log.exception("post-commit hook failed")


def _settle(fut: asyncio.Future, ok: bool, value: Any) -> None:
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
