"""Embedded Q-Store vs raw FAISS on the shared sentence embeddings.

    python benchmarks/vector_search.py [--n 19000] [--queries 1000]

For each index type: durable batched insert rate (1,000 per call, fsync on), single-query
QPS and recall@10 against exact search, for Q-Store and for raw FAISS built with the same
parameters in the same run, with the ratios. Query phases alternate between the two engines
(3 rounds, best of each); raw FAISS QPS is also the better of its default OpenMP setting and
one thread (Q-Store runs one-query searches single-threaded). Q-Store's insert time ends when
the last batch is searchable.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time

import faiss
import numpy as np

import qstore
from qstore.index import spec as specs
from qstore.index.spec import IndexSpec
from qstore.sample_data import load_embeddings
from server import indexed  # benchmarks/server.py

CORES = faiss.omp_get_max_threads()
INDEXES = {
    "flat": {"type": "flat"},
    "hnsw": {"type": "hnsw", "m": 32, "ef_construction": 200, "ef_search": 64},
    "ivf": {"type": "ivf", "nlist": 256, "nprobe": 8},
}


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))


def raw_faiss(kind: str, X: np.ndarray) -> tuple[faiss.Index, float]:
    """The raw index, built as Q-Store builds it (batches of 1,000), and its insert rate."""
    spec = IndexSpec.parse(INDEXES[kind])
    faiss.omp_set_num_threads(CORES)
    t0 = time.perf_counter()
    if kind == "flat":
        index = faiss.IndexFlatIP(X.shape[1])
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(X.shape[1], spec.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction, index.hnsw.efSearch = spec.ef_construction, spec.ef_search
    else:
        index = specs.build_ivf(X.shape[1], "ip", spec, X[:spec.ivf_train_size])
    for s in range(0, len(X), 1000):
        index.add(X[s:s + 1000])
    return index, len(X) / (time.perf_counter() - t0)


def raw_queries(index: faiss.Index, Q: np.ndarray) -> tuple[float, list[list[int]]]:
    """QPS at the better of FAISS's default OpenMP setting and one thread (as Q-Store searches)."""
    best, found = 0.0, []
    for threads in (CORES, 1):
        faiss.omp_set_num_threads(threads)
        found = []
        t0 = time.perf_counter()
        for q in Q:
            found.append(index.search(q[None, :], 10)[1][0].tolist())
        best = max(best, len(Q) / (time.perf_counter() - t0))
    faiss.omp_set_num_threads(CORES)
    return best, found


async def qstore_queries(col: qstore.Collection, Q: np.ndarray) -> tuple[float, list[list[int]]]:
    found = []
    t0 = time.perf_counter()
    for q in Q:
        found.append([int(h.id) for h in await col.query(q, top_k=10)])
    return len(Q) / (time.perf_counter() - t0), found


async def compare(kind: str, X: np.ndarray, Q: np.ndarray, truth: np.ndarray, rounds: int) -> list[tuple]:
    """Both engines in one process; query phases alternate and each keeps its best round, so
    neither gains from running second (warm caches) or loses to a noisy neighbour's burst."""
    index, raw_insert = raw_faiss(kind, X)
    path = tempfile.mkdtemp(prefix="qstore-bench-")
    try:
        async with await qstore.Database.open(path, sweep_interval=None) as db:
            col = await db.create_collection("bench", dim=X.shape[1], metric="ip", index=INDEXES[kind])
            ids = [str(i) for i in range(len(X))]
            t0 = time.perf_counter()
            for s in range(0, len(X), 1000):
                await col.upsert(ids[s:s + 1000], X[s:s + 1000])
            await indexed(col)
            insert = len(X) / (time.perf_counter() - t0)
            raw_qps = qs_qps = 0.0
            for _ in range(rounds):
                qps, raw_found = raw_queries(index, Q)
                raw_qps = max(raw_qps, qps)
                qps, found = await qstore_queries(col, Q)
                qs_qps = max(qs_qps, qps)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return [("faiss", raw_insert, raw_qps, recall(raw_found, truth)), ("qstore", insert, qs_qps, recall(found, truth))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=19_000, help="vectors to insert")
    ap.add_argument("--queries", type=int, default=1_000, help="held-out query vectors")
    ap.add_argument("--index", choices=list(INDEXES), action="append", help="index types (default: all)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating query rounds; each engine's best counts")
    args = ap.parse_args()
    data, _, source = load_embeddings(args.n + args.queries)
    X, Q = np.ascontiguousarray(data[:args.n]), np.ascontiguousarray(data[args.n:])
    truth = np.argsort(-(Q @ X.T), axis=1)[:, :10]
    print(f"data: {source}  n={len(X)} dim={X.shape[1]} queries={len(Q)}  faiss threads={faiss.omp_get_max_threads()}")
    print(f"{'index':<6} {'engine':<8} {'insert/s':>10} {'QPS':>9} {'recall@10':>10}")
    for kind in args.index or list(INDEXES):
        (_, ri, rq, rr), (_, qi, qq, qr) = asyncio.run(compare(kind, X, Q, truth, args.rounds))
        print(f"{kind:<6} {'faiss':<8} {ri:>10.0f} {rq:>9.0f} {rr:>10.3f}")
        print(f"{kind:<6} {'qstore':<8} {qi:>10.0f} {qq:>9.0f} {qr:>10.3f}")
        print(f"{kind:<6} {'ratio':<8} {qi / ri:>10.2f} {qq / rq:>9.2f} {qr - rr:>+10.3f}", flush=True)


if __name__ == "__main__":
    main()
