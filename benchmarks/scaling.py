"""How cost grows with size, at the defaults, beside raw FAISS: one command, a table.

    python benchmarks/scaling.py                       # 20k, 100k and 1M vectors
    python benchmarks/scaling.py --sizes 20000 100000  # skip the million (about 25 minutes here)

Each size runs twice, each in a fresh process so resident memory is its own: raw FAISS
(``IndexHNSWFlat``, m=32, ef_construction=200, ef_search=64, inner product on unit vectors, added
in batches of 1,000 with every core) and Q-Store embedded at its defaults (the same HNSW,
upserts of 1,000, timed until the graph holds every vector). Once the background snapshot that
the load's last batches start is written, one caller queries one vector at a time (FAISS with
one thread, as a single caller gets): QPS, p50, p99 and recall@10 against exact search; then
16 tasks share the queries on the one Database (the goal there is 1.5x FAISS's one-thread QPS:
concurrent callers should use both cores). Last, a copy of Q-Store's own graph is searched by
raw FAISS in the same process, three rounds alternated with Q-Store's (medians): the two
processes run minutes apart, and this VM's speed drifts by up to 1.5x in minutes, so this
ratio is the one to trust. Q-Store keeps its graph on transparent huge pages
(``qstore.index.huge_pages``), which FAISS alone does not; a third copy, on huge pages too,
shows Q-Store's own cost per query beside FAISS's on equal memory.

Memory is the growth of the process's anonymous resident memory from before the load to rest
(the heap: index, summaries, buffers; the figure just after the load is shown too, while
graph work and a snapshot may still be under way); Q-Store's is
split into the index and the rest (record summaries and allocator slack). The LMDB pages
resident in its file mapping are shown apart: they are page cache, which the kernel drops
under memory pressure and reads back.

Data: the 20,000 real MiniLM sentence embeddings (the last 1,000 are the queries), then
synthetic rows of the same distribution: a real row plus Gaussian noise shaped by the real
rows' covariance (a quarter of its scale), normalised, so clusters and anisotropy carry over.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import faiss
import numpy as np

DEFAULT = {"type": "hnsw", "m": 32, "ef_construction": 200, "ef_search": 64}
N_QUERIES = 1000
TOP_K = 10
CALLERS = 16  # concurrent tasks on one Database for the "16 callers" column


def dataset(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n stored rows, the queries): real rows first, then synthetic ones, all unit length."""
    from qstore.sample_data import load_embeddings

    real, _, _ = load_embeddings()
    queries, real = real[-N_QUERIES:], real[:-N_QUERIES]
    if n <= len(real):
        return np.ascontiguousarray(real[:n]), queries
    rng = np.random.default_rng(0)
    centred = real - real.mean(axis=0)
    shape = np.linalg.cholesky(np.cov(centred, rowvar=False) + 1e-6 * np.eye(real.shape[1])).astype(np.float32)
    out = np.empty((n, real.shape[1]), np.float32)
    out[:len(real)] = real
    for s in range(len(real), n, 100_000):
        e = min(n, s + 100_000)
        rows = real[rng.integers(0, len(real), e - s)] + 0.25 * rng.standard_normal((e - s, real.shape[1]),
                                                                                   dtype=np.float32) @ shape.T
        out[s:e] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out, queries


def rss(kind: str = "RssAnon") -> int:
    """Resident bytes of this process: anonymous memory (heap, index, summaries) by default;
    "RssFile" is mapped files (the LMDB map), pages the kernel may drop and re-read."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {kind} in /proc/self/status")


def mapped_rss(path_part: str) -> int:
    """Resident bytes of the mappings whose path contains ``path_part`` (the LMDB map)."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if "-" in line.split(" ", 1)[0]:
                inside = path_part in line
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1]) * 1024
    return total


def latencies(search: Any, queries: np.ndarray) -> tuple[float, np.ndarray, list[list[int]]]:
    for q in queries[:50]:
        search(q)
    lat, found = np.empty(len(queries)), []
    t0 = time.perf_counter()
    for i, q in enumerate(queries):
        s = time.perf_counter()
        found.append(search(q))
        lat[i] = time.perf_counter() - s
    return len(queries) / (time.perf_counter() - t0), lat, found


def raw_worker(n: int) -> dict[str, Any]:
    x, queries = dataset(n)
    before = rss()
    index = faiss.IndexHNSWFlat(x.shape[1], DEFAULT["m"], faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = DEFAULT["ef_construction"]
    t0 = time.perf_counter()
    for s in range(0, n, 1000):
        index.add(x[s:s + 1000])
    insert = n / (time.perf_counter() - t0)
    memory = rss() - before
    index.hnsw.efSearch = DEFAULT["ef_search"]
    faiss.omp_set_num_threads(1)
    qps, lat, found = latencies(lambda q: index.search(q[None, :], TOP_K)[1][0].tolist(), queries)
    return {"insert": insert, "qps": qps, "lat": lat.tolist(), "found": found, "memory": memory}


def qstore_worker(n: int) -> dict[str, Any]:
    import qstore
    from qstore.index.huge_pages import HugePages

    x, queries = dataset(n)

    async def run() -> dict[str, Any]:
        with tempfile.TemporaryDirectory(prefix="qstore-scale-") as tmp:
            before = rss()
            async with await qstore.Database.open(tmp, sweep_interval=None) as db:
                col = await db.create_collection("bench", dim=x.shape[1], metric="ip", index=DEFAULT)
                ids = [str(i) for i in range(n)]
                t0 = time.perf_counter()
                for s in range(0, n, 1000):
                    await col.upsert(ids[s:s + 1000], x[s:s + 1000])
                while (await col.info())["unindexed_vectors"]:
                    await asyncio.sleep(0.01)
                insert = n / (time.perf_counter() - t0)
                busy = rss() - before  # graph work and a snapshot may still be under way
                await db._storage.settle()  # memory and queries measure the index at rest: the last
                while col._snapshot_thread is not None:  # graph work and the snapshot it started are done
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(col.index.pages.wait)  # and the graph is on huge pages
                memory = rss() - before
                graph = faiss.serialize_index(col.index._index)  # its size; raw FAISS's copy below
                index_bytes = len(graph)
                lmdb = mapped_rss(os.path.join(tmp, "lmdb"))
                lat, found = np.empty(len(queries)), []
                for q in queries[:50]:
                    await col.query(q, top_k=TOP_K)
                t = time.perf_counter()
                for i, q in enumerate(queries):
                    s = time.perf_counter()
                    found.append([int(h.id) for h in await col.query(q, top_k=TOP_K)])
                    lat[i] = time.perf_counter() - s
                qps = len(queries) / (time.perf_counter() - t)

                async def caller(share: np.ndarray) -> None:
                    for q in share:
                        await col.query(q, top_k=TOP_K)

                t = time.perf_counter()
                await asyncio.gather(*(caller(share) for share in np.array_split(queries, CALLERS)))
                concurrent = len(queries) / (time.perf_counter() - t)
                # The same graph in raw FAISS, in this process, its queries alternated with Q-Store's:
                # a ratio this VM's drift cannot move (the two processes above run minutes apart).
                # A second copy on huge pages, as Q-Store keeps its graph: Q-Store's cost per query
                # beside FAISS's on equal memory (the first copy is FAISS as a user runs it).
                raws = {"faiss": faiss.deserialize_index(graph), "faiss_huge": faiss.deserialize_index(graph)}
                for raw in raws.values():
                    faiss.downcast_index(faiss.downcast_index(raw).index).hnsw.efSearch = DEFAULT["ef_search"]
                pages = HugePages()
                pages.update(raws["faiss_huge"])
                pages.wait()
                faiss.omp_set_num_threads(1)
                alternated: dict[str, list[float]] = {"qstore": [], **{name: [] for name in raws}}
                for _ in range(3):
                    t = time.perf_counter()
                    for q in queries:
                        await col.query(q, top_k=TOP_K)
                    alternated["qstore"].append(len(queries) / (time.perf_counter() - t))
                    for name, raw in raws.items():
                        t = time.perf_counter()
                        for q in queries:
                            raw.search(q[None, :], TOP_K)
                        alternated[name].append(len(queries) / (time.perf_counter() - t))
                return {"insert": insert, "qps": qps, "lat": lat.tolist(), "found": found, "memory": memory,
                        "index": index_bytes, "lmdb": lmdb, "concurrent": concurrent, "busy": busy,
                        "alternated": alternated}

    return asyncio.run(run())


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / TOP_K for f, t in zip(found, truth)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000, 1_000_000],
                    help="collection sizes (default: %(default)s)")
    ap.add_argument("--worker", choices=["faiss", "qstore"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        out = (raw_worker if args.worker == "faiss" else qstore_worker)(args.sizes[0])
        print(json.dumps(out))
        return
    print(f"HNSW {DEFAULT}; {N_QUERIES} queries, top {TOP_K}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| vectors | engine | insert/s | QPS | p50 ms | p99 ms | recall@10 | memory MiB | bytes/vector "
          f"| QPS, {CALLERS} callers | ratio QPS / insert / memory / {CALLERS} callers |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for n in args.sizes:
        x, queries = dataset(n)
        truth = faiss.knn(queries, x, TOP_K, faiss.METRIC_INNER_PRODUCT)[1]
        del x
        res = {}
        for engine in ("faiss", "qstore"):
            proc = subprocess.run([sys.executable, __file__, "--worker", engine, "--sizes", str(n)],
                                  check=True, capture_output=True, text=True)
            res[engine] = json.loads(proc.stdout.splitlines()[-1])
        for engine, r in res.items():
            lat = np.array(r["lat"]) * 1e3
            ratio = ""
            if engine == "qstore":
                f = res["faiss"]
                alt = {k: float(np.median(v)) for k, v in r["alternated"].items()}
                ratio = (f"{r['qps'] / f['qps']:.2f} / {r['insert'] / f['insert']:.2f} / "
                         f"{r['memory'] / f['memory']:.2f} / {r['concurrent'] / f['qps']:.2f} "
                         f"(index {r['index'] / 2**20:,.0f} MiB, summaries "
                         f"and the rest {(r['memory'] - r['index']) / 2**20:,.0f}; LMDB map resident "
                         f"{r['lmdb'] / 2**20:,.0f}; just after the load {r['busy'] / 2**20:,.0f}); same graph, "
                         f"alternated: {alt['qstore']:,.0f} vs {alt['faiss']:,.0f} QPS, "
                         f"{alt['qstore'] / alt['faiss']:.2f}; FAISS on huge pages too "
                         f"{alt['faiss_huge']:,.0f}, {alt['qstore'] / alt['faiss_huge']:.2f}")
            print(f"| {n:,} | {engine} | {r['insert']:,.0f} | {r['qps']:,.0f} | {np.percentile(lat, 50):.2f} "
                  f"| {np.percentile(lat, 99):.2f} | {recall(r['found'], truth):.3f} | {r['memory'] / 2**20:,.0f} "
                  f"| {r['memory'] / n:,.0f} | {r.get('concurrent', 0):,.0f} | {ratio} |", flush=True)


if __name__ == "__main__":
    main()
