"""One FAISS index per collection, keyed by internal sequential ids.

Internal ids are never reused, so an id always names one immutable vector. That makes
crash replay a set operation (snapshot − removed + added-and-still-live) and lets HNSW,
which cannot remove, keep deleted ids as tombstones until a background rebuild.
"""
from __future__ import annotations

import logging
import threading

import faiss
import numpy as np

from qstore import runtime
from qstore.index import spec as specs
from qstore.index.rwlock import RWLock
from qstore.index.spec import IndexSpec

log = logging.getLogger(__name__)

REBUILD_TOMBSTONE_RATIO = 0.2
REBUILD_MIN_TOMBSTONES = 64
# Vectors added per hold of the write lock: a search waits for one chunk's graph work, not a
# whole batch's (500 vectors at the HNSW defaults take a few hundred milliseconds).
ADD_CHUNK = 64
_NO_IDS = np.empty(0, np.int64)


class VectorIndex:
    def __init__(self, dim: int, metric: str, spec: IndexSpec, index: faiss.Index | None = None,
                 tombstones: set[int] | None = None, applied_seq: int = 0):
        self.dim, self.metric, self.spec = dim, metric, spec
        self.lock = RWLock()
        self._index = index if index is not None else self._empty()
        self._tombstones: set[int] = tombstones or set()
        self._tomb_selector: faiss.IDSelector | None = None
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._unpublished = 0  # added by ``add``, not yet published by ``apply``
        self._published = threading.Event()
        self._published.set()
        self._rebuild: threading.Thread | None = None
        self.applied_seq = applied_seq
        self.rebuilds = 0

    def _empty(self) -> faiss.Index:
        if self.spec.type == "hnsw":
            return specs.build_hnsw(self.dim, self.metric, self.spec)
        return specs.build_flat(self.dim, self.metric)  # ivf starts flat until trained

    # -- shape of the data ---------------------------------------------------
    def prepare(self, vectors: np.ndarray) -> np.ndarray:
        """float32, C-contiguous, unit length under cosine (so inner product is cosine)."""
        x = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if self.metric == "cosine":
            x = x / np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)

    @property
    def size(self) -> int:
        """Vectors stored, tombstones excluded."""
        return self._index.ntotal - len(self._tombstones)

    @property
    def tombstones(self) -> int:
        return len(self._tombstones)

    @property
    def trained(self) -> bool:
        return self.spec.type != "ivf" or isinstance(self._index, faiss.IndexIVF)

    def ids(self) -> np.ndarray:
        if isinstance(self._index, faiss.IndexIVF):
            inv = self._index.invlists
            parts = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy()
                     for i in range(self._index.nlist) if inv.list_size(i)]
            ids = np.concatenate(parts) if parts else np.empty(0, np.int64)
        else:
            ids = faiss.vector_to_array(self._index.id_map)
        if self._tombstones:
            ids = ids[~np.isin(ids, np.fromiter(self._tombstones, np.int64))]
        return ids

    # -- mutation (writer thread, after the LMDB commit) ----------------------
    def add(self, add_ids: np.ndarray, add_vecs: np.ndarray) -> None:
        """Add a batch's new vectors a chunk per hold of the write lock. Until ``apply``
        publishes them no record owns them: searches skip them and ask for as many more
        results, and snapshots wait."""
        self._published.clear()
        for s in range(0, len(add_ids), ADD_CHUNK):
            chunk = add_ids[s:s + ADD_CHUNK], add_vecs[s:s + ADD_CHUNK], _NO_IDS
            with self.lock.write():
                self._apply_locked(self._index, self._tombstones, *chunk)
                if self._pending is not None:
                    self._pending.append(chunk)
                self._unpublished += len(chunk[0])

    def apply(self, add_ids: np.ndarray, add_vecs: np.ndarray, remove_ids: np.ndarray, seq: int) -> None:
        """Apply one committed change (and publish what ``add`` added before it)."""
        with self.lock.write():
            self._apply_locked(self._index, self._tombstones, add_ids, add_vecs, remove_ids)
            if self._pending is not None:
                self._pending.append((add_ids, add_vecs, remove_ids))
            self.applied_seq = max(self.applied_seq, seq)
            self._unpublished = 0
            self._published.set()
            self._maybe_train()
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
            with self.lock.read():
                ids = self.ids()
                vecs = self._index.reconstruct_batch(ids) if len(ids) else np.empty((0, self.dim), np.float32)
                self._pending = []
            fresh = specs.build_hnsw(self.dim, self.metric, self.spec)
            if len(ids):
                fresh.add_with_ids(vecs, ids)
            with self.lock.write():
                fresh_tombs: set[int] = set()
                for add_ids, add_vecs, remove_ids in self._pending:
                    self._apply_locked(fresh, fresh_tombs, add_ids, add_vecs, remove_ids)
                self._index, self._tombstones, self._pending = fresh, fresh_tombs, None
                self._tomb_selector = None
                self.rebuilds += 1
            log.info("rebuilt HNSW index without tombstones: %d vectors", len(ids))
        except Exception:
            log.exception("HNSW rebuild failed; tombstones stay filtered")
            self._pending = None
        finally:
            self._rebuild = None

    def wait_for_rebuild(self, timeout: float | None = None) -> None:
        thread = self._rebuild
        if thread is not None:
            thread.join(timeout)

    # -- search (read threads) -------------------------------------------------
    def search(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               exclude: np.ndarray | None = None, ef: int | None = None, nprobe: int | None = None,
               wait: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-k over live ids (or ``allowed`` ids). Scores are higher-is-better.
        ``ef`` (HNSW) and ``nprobe`` (IVF) override the spec's search effort.
        With ``wait=False`` it raises WouldBlock rather than wait for a writer."""
        with self.lock.read(wait), _threads_for(len(queries)):
            if allowed is None:
                k += self._unpublished  # the caller drops them (no record owns them yet)
            if self.spec.type == "hnsw" and k > (ef or self.spec.ef_search):
                ef = k  # FAISS keeps efSearch even when k exceeds it: the tail of the results would be poor
            selector = self._selector(allowed, exclude)
            if selector is None and ef is None and nprobe is None:  # the hot path: no parameter objects
                dist, ids = self._index.search(queries, k)
            else:
                params = specs.search_params(self._index, self.spec, selector, ef, nprobe)
                dist, ids = self._index.search(queries, k, params=params)
        return (-dist if self.metric == "l2" else dist), ids

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
        with self.lock.read():
            return self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))

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
    def snapshot(self) -> tuple[int, np.ndarray, bytes, int]:
        """(last sequence applied, tombstones, serialized index, live vectors), taken together."""
        while True:  # never between ``add`` and ``apply``: the vectors would be ahead of the sequence
            self._published.wait()
            with self.lock.read():
                if self._unpublished:
                    continue
                tombs = np.array(sorted(self._tombstones), dtype=np.int64)
                return self.applied_seq, tombs, faiss.serialize_index(self._index).tobytes(), self.size

    @classmethod
    def restore(cls, dim: int, metric: str, spec: IndexSpec, seq: int, tombs: np.ndarray,
                data: bytes) -> VectorIndex:
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        return cls(dim, metric, spec, index=index, tombstones=set(int(t) for t in tombs), applied_seq=seq)


class _threads_for:
    """Per-thread OpenMP setting: a one-query search gains nothing from a thread team, and idle
    team members spin on the cores the event loop and other readers need. The caller's own
    setting comes back afterwards (searches may run on the caller's thread)."""

    __slots__ = ("n", "before")

    def __init__(self, n_queries: int):
        self.n = 1 if n_queries < 16 else runtime.config().omp_threads

    def __enter__(self) -> None:
        self.before = faiss.omp_get_max_threads()
        if self.before != self.n:
            faiss.omp_set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.before != self.n:
            faiss.omp_set_num_threads(self.before)
