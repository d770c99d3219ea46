"""One FAISS index per collection, keyed by internal sequential ids.

Internal ids are never reused, so an id always names one immutable vector. That makes
crash replay a set operation (snapshot − removed + added-and-still-live) and lets HNSW,
which cannot remove, keep deleted ids as tombstones until a background rebuild.
"""
from __future__ import annotations

import heapq
import itertools
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import faiss
import numpy as np

from qstore import runtime
from qstore.index import spec as specs
from qstore.index.huge_pages import HugePages
from qstore.index.rwlock import RWLock
from qstore.index.snapshot import SnapshotWriter
from qstore.index.spec import IndexSpec

log = logging.getLogger(__name__)

REBUILD_TOMBSTONE_RATIO = 0.2
REBUILD_MIN_TOMBSTONES = 64
# Fresh vectors move into the graph in chunks, each holding the write lock for about HOLD
# seconds. While searches come in (one asked for in the last QUIET seconds) a chunk holds it
# about a millisecond, with one OpenMP thread (a second would contend with the readers for the
# cores, and under oversubscription OpenMP's spinning barriers stretch a chunk to seconds), and
# pauses YIELD times as long before the next. Otherwise a chunk takes every thread and up to a
# second, so the first query of a bulk load waits that long at most: FAISS splits each level
# of a chunk evenly between its threads and the slower half decides, so small chunks idle a
# core (at 100k, 280 vectors a chunk added 1,750/s at 134 % CPU, 1,000 2,550/s at 170 %; 0.2 s
# chunks held a 300k load to 0.66x raw FAISS, 1 s ones ran it at 1.0x).
HOLD = {True: 0.001, False: 1.0}
QUIET = 0.5
YIELD = 3.0  # while searches come in, the graph work pauses this long for each second it held the lock
_NO_IDS = np.empty(0, np.int64)
# From this many fresh vectors a lone query has them scanned on a helper thread while it
# searches the graph: under a write stream the fresh set holds ~1,700 rows, whose scan
# (~200 µs at 384 dimensions) otherwise adds to the graph search on one core while the
# other idles.
FRESH_ALONGSIDE = 256


def _helper() -> None:
    global _ALONGSIDE
    _ALONGSIDE = ThreadPoolExecutor(1, thread_name_prefix="qstore-fresh", initializer=faiss.omp_set_num_threads,
                                    initargs=(1,))


_helper()
os.register_at_fork(after_in_child=_helper)  # a forked child has no helper thread: give it its own


class VectorIndex:
    """A FAISS index (the graph) plus the fresh set: vectors committed but not yet added to the
    graph, searched exactly. A commit publishes into the fresh set at once (``publish``, cheap),
    and a background thread moves fresh vectors into the graph (``integrate``, the expensive
    part) a chunk per hold of the write lock, so searches never wait for graph construction
    and always see every acknowledged write."""

    def __init__(self, dim: int, metric: str, spec: IndexSpec, index: faiss.Index | None = None,
                 tombstones: set[int] | None = None, applied_seq: int = 0):
        self.dim, self.metric, self.spec = dim, metric, spec
        self.lock = RWLock()
        self._index = index if index is not None else self._empty()
        self._tombstones: set[int] = tombstones or set()  # graph ids removed but not yet rebuilt away
        self._tomb_selector: faiss.IDSelector | None = None
        self._fresh_ids = _NO_IDS  # ascending: ids are allocated in commit order
        self._fresh_vecs = np.empty((0, dim), np.float32)
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._rebuild: threading.Thread | None = None
        self.applied_seq = applied_seq  # every change up to it is in the graph
        self._last_search = 0.0  # time.monotonic() of the last search asked for
        self._add_cost = {True: 1e-3, False: 1e-3}  # seconds per vector added, while searches run or not
        self.rebuilds = 0
        self.pages = HugePages()
        self.pages.update(self._index)
        self._size = self._index.ntotal - len(self._tombstones)

    def _empty(self) -> faiss.Index:
        if self.spec.type == "hnsw":
            return specs.build_hnsw(self.dim, self.metric, self.spec)
        return specs.build_flat(self.dim, self.metric)  # ivf starts flat until trained

    # -- shape of the data ---------------------------------------------------
    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        """float32, C-contiguous, unit length under cosine (so inner product is cosine)."""
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if self.metric != "cosine":
            return x
        # FAISS's norms and one multiply; a lone row (a query) in scalars: right after a search
        # each numpy call costs ~10 µs. Both ways give the same bits, so query and query_batch agree.
        if len(x) == 1:
            norm2 = faiss.fvec_norm_L2sqr(faiss.swig_ptr(x), self.dim)
            return x * np.float32(1 / math.sqrt(norm2) if norm2 > 0 else math.inf)
        norm2 = np.empty(len(x), np.float32)
        faiss.fvec_norms_L2sqr(faiss.swig_ptr(norm2), faiss.swig_ptr(x), self.dim, len(x))
        with np.errstate(divide="ignore"):
            scale = (1 / np.sqrt(norm2.astype(np.float64))).astype(np.float32)
        return x * scale[:, None]

    @property
    def size(self) -> int:
        """Vectors stored, tombstones excluded, fresh ones included (read without the lock:
        every write section recounts it once it is done)."""
        return self._size

    @contextmanager
    def _writing(self) -> Iterator[None]:
        with self.lock.write():
            try:
                yield
            finally:
                self._size = self._index.ntotal - len(self._tombstones) + len(self._fresh_ids)

    @property
    def fresh(self) -> int:
        """Vectors searchable but not yet in the graph."""
        return len(self._fresh_ids)

    def counts(self) -> dict[str, int]:
        """Live vectors in the graph, in the fresh set, and the graph's tombstones, taken together."""
        with self.lock.read():
            return {"indexed_vectors": self._index.ntotal - len(self._tombstones),
                    "unindexed_vectors": len(self._fresh_ids), "tombstones": len(self._tombstones)}

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    @property
    def trained(self) -> bool:
        return self.spec.type != "ivf" or isinstance(self._index, faiss.IndexIVF)

    def ids(self) -> np.ndarray:
        """Live ids, graph and fresh."""
        with self.lock.read():
            return self._ids_locked()

    def _ids_locked(self) -> np.ndarray:
        if isinstance(self._index, faiss.IndexIVF):
            inv = self._index.invlists
            parts = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy()
                     for i in range(self._index.nlist) if inv.list_size(i)]
            ids = np.concatenate(parts) if parts else np.empty(0, np.int64)
        else:
            ids = faiss.vector_to_array(self._index.id_map)
        if self._tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self._tombstones, np.int64))]
        return np.concatenate([ids, self._fresh_ids]) if len(self._fresh_ids) else ids

    # -- mutation --------------------------------------------------------------
    def publish(self, add_ids: np.ndarray, add_vecs: np.ndarray, remove_ids: np.ndarray) -> None:
        """Make one committed change searchable (the writer thread, before the caller is
        answered): new vectors join the fresh set; removed ones leave it, or leave the graph."""
        with self._writing():
            if len(remove_ids):
                remove_ids = np.asarray(remove_ids, np.int64)
                gone = np.isin(self._fresh_ids, remove_ids)
                if gone.any():
                    remove_ids = np.setdiff1d(remove_ids, self._fresh_ids[gone])
                    self._fresh_ids, self._fresh_vecs = self._fresh_ids[~gone], self._fresh_vecs[~gone]
                self._apply_locked(self._index, self._tombstones, _NO_IDS, self._fresh_vecs[:0], remove_ids)
                if self._pending is not None:
                    self._pending.append((_NO_IDS, self._fresh_vecs[:0], remove_ids))
            if len(add_ids):
                self._fresh_ids = np.concatenate([self._fresh_ids, np.asarray(add_ids, np.int64)])
                self._fresh_vecs = np.concatenate([self._fresh_vecs, add_vecs])

    def integrate(self, seq: int, upto: int | None = None) -> None:
        """Move the fresh set into the graph (the applier thread), a chunk per hold of the write
        lock, so a search waits for one chunk's graph work at most. Every change up to ``seq``
        was published before this call, its vectors under internal ids up to ``upto``; afterwards
        all of them are in the graph. While searches come in, vectors of later changes are left
        to their own calls: a writer held back by graph work then waits for its own batch, not
        for every batch published meanwhile (beside readers a 500-vector stream advanced in bursts
        of four batches, ~5 s apart). ``upto`` None: the whole fresh set."""
        while True:
            busy = time.monotonic() - self._last_search < QUIET
            n = max(1, int(HOLD[busy] / self._add_cost[busy]))
            held = 0.0
            with self._writing(), _threads(1 if busy else os.cpu_count() or 1):
                left = len(self._fresh_ids)
                own = left if upto is None or not busy else int(np.count_nonzero(self._fresh_ids <= upto))
                if not own:
                    if not left:
                        self._fresh_vecs = self._fresh_vecs[:0].copy()  # a view would keep the batch alive
                    self.applied_seq = max(self.applied_seq, seq)
                    self._maybe_train()
                    break
                n = min(n, own)  # the fresh set is in commit order: its own vectors come first
                ids, vecs = self._fresh_ids[:n], self._fresh_vecs[:n]
                start = time.perf_counter()
                self._apply_locked(self._index, self._tombstones, ids, vecs, _NO_IDS)
                held = time.perf_counter() - start
                self._add_cost[busy] += 0.2 * (held / len(ids) - self._add_cost[busy])
                if self._pending is not None:
                    self._pending.append((ids, vecs, _NO_IDS))
                self._fresh_ids, self._fresh_vecs = self._fresh_ids[n:], self._fresh_vecs[n:]
            if busy:  # searches and graph work cannot overlap: give them the lock and a core in turn
                time.sleep(held * YIELD)
        self.pages.update(self._index)
        self._maybe_rebuild()

    def apply(self, add_ids: np.ndarray, add_vecs: np.ndarray, remove_ids: np.ndarray, seq: int) -> None:
        """Put a change straight into the graph (loading and rebuilding, with no searches yet)."""
        with self._writing():
            self._apply_locked(self._index, self._tombstones, add_ids, add_vecs, remove_ids)
            self.applied_seq = max(self.applied_seq, seq)
            self._maybe_train()
        self.pages.update(self._index)
        self._maybe_rebuild()

    def _apply_locked(self, index: faiss.Index, tombs: set[int], add_ids: np.ndarray,
                      add_vecs: np.ndarray, remove_ids: np.ndarray) -> None:
        if len(remove_ids):
            if self.spec.type == "hnsw":
                tombs.update(int(i) for i in remove_ids)
                self._tomb_selector = None
            else:
                index.remove_ids(np.asarray(remove_ids, dtype=np.int64))
        if len(add_ids):
            index.add_with_ids(add_vecs, np.asarray(add_ids, dtype=np.int64))

    def _maybe_train(self) -> None:
        if self.trained or self._index.ntotal < self.spec.ivf_train_size:
            return
        ids = faiss.vector_to_array(self._index.id_map)
        vecs = self._index.reconstruct_batch(ids)
        ivf = specs.build_ivf(self.dim, self.metric, self.spec, vecs)
        ivf.add_with_ids(vecs, ids)
        self._index = ivf
        log.info("trained IVF index (nlist=%d) on %d vectors", self.spec.nlist, len(ids))

    def _maybe_rebuild(self) -> None:
        n_tomb = len(self._tombstones)
        if (self.spec.type != "hnsw" or self._rebuild is not None or n_tomb < REBUILD_MIN_TOMBSTONES
                or n_tomb <= REBUILD_TOMBSTONE_RATIO * self._index.ntotal):
            return
        self._rebuild = threading.Thread(target=self._rebuild_hnsw, name="qstore-rebuild", daemon=True)
        self._rebuild.start()

    def _rebuild_hnsw(self) -> None:
        try:
            with self.lock.read():  # the graph only: the fresh set reaches the new graph by integrate
                ids = faiss.vector_to_array(self._index.id_map)
                if self._tombstones:
                    ids = ids[~np.isin(ids, np.fromiter(self._tombstones, np.int64))]
                vecs = self._index.reconstruct_batch(ids) if len(ids) else np.empty((0, self.dim), np.float32)
                self._pending = []
            fresh = specs.build_hnsw(self.dim, self.metric, self.spec)
            if len(ids):
                fresh.add_with_ids(vecs, ids)
            with self._writing():
                fresh_tombs: set[int] = set()
                for add_ids, add_vecs, remove_ids in self._pending:
                    self._apply_locked(fresh, fresh_tombs, add_ids, add_vecs, remove_ids)
                self._index, self._tombstones, self._pending = fresh, fresh_tombs, None
                self._tomb_selector = None
                self.rebuilds += 1
            self.pages.update(fresh)
            log.info("rebuilt HNSW index without tombstones: %d vectors", len(ids))
        except Exception:
            log.exception("HNSW rebuild failed; tombstones stay filtered")
            self._pending = None
        finally:
            self._rebuild = None

    @property
    def rebuilding(self) -> bool:
        return self._rebuild is not None

    def wait_for_rebuild(self, timeout: float | None = None) -> None:
        thread = self._rebuild
        if thread is not None:
            thread.join(timeout)

    # -- search (read threads) -------------------------------------------------
    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               exclude: np.ndarray | None = None, ef: int | None = None, nprobe: int | None = None,
               wait: float = math.inf) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k over live ids (or ``allowed`` ids): the graph's answer merged with
        an exact scan of the fresh set. Scores are higher-is-better. ``ef`` (HNSW) and
        ``nprobe`` (IVF) override the spec's search effort.
        It raises WouldBlock rather than wait for a writer longer than ``wait`` seconds."""
        self.searching()
        with self.lock.read(wait), _threads_for(len(queries)):
            if self.spec.type == "hnsw" and k > (ef or self.spec.ef_search):
                ef = k  # FAISS keeps efSearch even when k exceeds it: the tail of the results would be poor
            alongside = None
            if len(queries) == 1 and len(self._fresh_ids) >= FRESH_ALONGSIDE:
                alongside = _ALONGSIDE.submit(self._fresh_top, queries, k, allowed, exclude)
            selector = self._selector(allowed, exclude)
            if selector is None and ef is None and nprobe is None:  # the hot path: no parameter objects
                dist, ids = self._index.search(queries, k)
            else:
                params = specs.search_params(self._index, self.spec, selector, ef, nprobe)
                dist, ids = self._index.search(queries, k, params=params)
            scores = -dist if self.metric == "l2" else dist
            if alongside is not None:
                fresh = alongside.result()
            else:
                fresh = self._fresh_top(queries, k, allowed, exclude) if len(self._fresh_ids) else None
            if fresh is not None:
                scores, ids = _merge(k, scores, ids, *fresh)
        return scores, ids

    def searching(self) -> None:
        """Note that a search is coming: graph work yields to searches for a while. Callers say
        so before they take locks of their own, which may wait for that graph work."""
        self._last_search = time.monotonic()

    def _fresh_top(self, queries: np.ndarray, k: int, allowed: np.ndarray | None,
                   exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The exact top k of the fresh set (scores higher-is-better, ids), None if none qualify."""
        fresh_ids, fresh_vecs = self._fresh_ids, self._fresh_vecs
        keep = None
        if allowed is not None:
            keep = np.isin(fresh_ids, allowed)
        elif exclude is not None and len(exclude):
            keep = ~np.isin(fresh_ids, exclude)
        if keep is not None:
            fresh_ids, fresh_vecs = fresh_ids[keep], fresh_vecs[keep]
        if not len(fresh_ids):
            return None
        dist, pos = faiss.knn(queries, fresh_vecs, min(k, len(fresh_ids)), specs.faiss_metric(self.metric))
        return (-dist if self.metric == "l2" else dist), fresh_ids[pos]

    def _selector(self, allowed: np.ndarray | None, exclude: np.ndarray | None) -> faiss.IDSelector | None:
        if allowed is not None:  # callers pass live ids only
            return faiss.IDSelectorBatch(np.asarray(allowed, dtype=np.int64))
        if exclude is not None and len(exclude):
            dead = np.concatenate([np.asarray(exclude, np.int64), np.fromiter(self._tombstones, np.int64)])
            return faiss.IDSelectorNot(faiss.IDSelectorBatch(dead))
        if not self._tombstones:
            return None
        if self._tomb_selector is None:
            self._tomb_selector = faiss.IDSelectorNot(
                faiss.IDSelectorBatch(np.fromiter(self._tombstones, np.int64)))
        return self._tomb_selector

    def coarse_centroids(self) -> np.ndarray | None:
        """The IVF coarse centroids once the index is trained, else None."""
        with self.lock.read():
            if not isinstance(self._index, faiss.IndexIVF):
                return None
            quantizer = self._index.quantizer
            return quantizer.reconstruct_n(0, quantizer.ntotal)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        with self.lock.read():
            if not len(self._fresh_ids):
                return self._index.reconstruct_batch(ids)
            at = np.minimum(np.searchsorted(self._fresh_ids, ids), len(self._fresh_ids) - 1)
            fresh = self._fresh_ids[at] == ids
            out = np.empty((len(ids), self.dim), np.float32)
            out[fresh] = self._fresh_vecs[at[fresh]]
            if not fresh.all():
                out[~fresh] = self._index.reconstruct_batch(ids[~fresh])
            return out

    def exact_search(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over ``ids``: the path for selective filters, where HNSW recall collapses."""
        ids = np.asarray(ids, dtype=np.int64)
        out_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
        out_i = np.full((len(queries), k), -1, dtype=np.int64)
        if not len(ids):
            return out_s, out_i
        kk = min(k, len(ids))
        vecs = self.vectors(ids)
        with _threads_for(len(queries)):
            dist, pos = faiss.knn(queries, vecs, kk, specs.faiss_metric(self.metric))
        out_s[:, :kk] = -dist if self.metric == "l2" else dist
        out_i[:, :kk] = ids[pos]
        return out_s, out_i

    def similarity(self, queries: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Score matrix (queries × vectors) on prepared vectors, higher-is-better."""
        # FAISS's SIMD kernels, not NumPy: multithreaded BLAS on tiny products stalls under load.
        with _threads_for(len(queries)):
            dist, pos = faiss.knn(queries, np.ascontiguousarray(vectors, dtype=np.float32), len(vectors),
                                  specs.faiss_metric(self.metric))
        out = np.empty_like(dist)
        np.put_along_axis(out, pos, dist, axis=1)
        return -out if self.metric == "l2" else out

    # -- snapshots -------------------------------------------------------------
    def snapshot(self, writer: SnapshotWriter, graph_owner: bool = False) -> tuple[int, int]:
        """Stream the graph and its tombstones into ``writer``; returns the last sequence in
        the graph and its live vectors, taken together with them. The graph may hold part of
        later changes too: replay is a set operation. ``graph_owner``: the caller is the
        applier, the one thread that changes an HNSW graph, so it writes without holding the
        lock and searches go on meanwhile (other index types also change at commit, so they
        always take it)."""
        with self.lock.read():
            index, tombs = self._index, np.array(sorted(self._tombstones), dtype=np.int64)
            seq, count = self.applied_seq, index.ntotal - len(self._tombstones)
            if not (graph_owner and self.spec.type == "hnsw"):
                writer.body(tombs, index)
                return seq, count
        writer.body(tombs, index)
        return seq, count

    @classmethod
    def restore(cls, dim: int, metric: str, spec: IndexSpec, seq: int, tombs: np.ndarray,
                data: bytes) -> VectorIndex:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(dim, metric, spec, index=index, tombstones=set(int(t) for t in tombs), applied_seq=seq)


def _merge(k: int, scores: np.ndarray, ids: np.ndarray, fresh_scores: np.ndarray,
           fresh_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The top k of the graph's answer and the fresh set's, per query."""
    if len(scores) == 1:  # plain Python: after a search each numpy call costs ~10 µs (cold caches)
        return _merge_one(k, scores[0].tolist(), ids[0].tolist(), fresh_scores[0].tolist(), fresh_ids[0].tolist())
    all_scores = np.concatenate([np.where(ids >= 0, scores, -np.inf), fresh_scores], axis=1)
    all_ids = np.concatenate([ids, fresh_ids], axis=1)
    best = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
    return (np.take_along_axis(all_scores, best, axis=1).astype(np.float32, copy=False),
            np.take_along_axis(all_ids, best, axis=1))


def _merge_one(k: int, graph_scores: list[float], graph_ids: list[int], fresh_scores: list[float],
               fresh_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One query's top k of two best-first lists (the graph's first on ties), padded as FAISS pads."""
    rows = list(itertools.islice(heapq.merge(((s, i) for s, i in zip(graph_scores, graph_ids) if i >= 0),
                                             zip(fresh_scores, fresh_ids), key=lambda row: -row[0]), k))
    rows += [(-math.inf, -1)] * (k - len(rows))
    return np.array([[s for s, _ in rows]], np.float32), np.array([[i for _, i in rows]], np.int64)


class _threads:
    """Per-thread OpenMP setting, the caller's own coming back afterwards (searches may run on
    the caller's thread)."""

    __slots__ = ("n", "before")

    def __init__(self, n: int):
        self.n = n

    def __enter__(self) -> None:
        self.before = faiss.omp_get_max_threads()
        if self.before != self.n:
            faiss.omp_set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.before != self.n:
            faiss.omp_set_num_threads(self.before)


def _threads_for(n_queries: int) -> _threads:
    """A one-query search gains nothing from a thread team, and idle team members spin on the
    cores the event loop and other readers need. Even a single query, which FAISS searches on
    the calling thread, ran at 2,600 QPS against 3,800 (20k vectors, in a Database after its
    load) when that thread kept the default setting."""
    return _threads(1 if n_queries < 16 else runtime.config().omp_threads)
