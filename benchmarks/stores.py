"""The two stores side by side: LMDB + FAISS against Qdrant.

    python benchmarks/stores.py [--n 5000] [--queries 200] [--qdrant-url http://host:6333]

On the shared embeddings (synthetic when missing): write throughput, query latency (plain,
filtered, Born-weighted over superposed records), reads by id, and recall@10 against brute
force, for each store in the same run, phases interleaved (LMDB, Qdrant, LMDB, Qdrant...),
reported as Qdrant / LMDB ratios.

Without --qdrant-url, Qdrant runs in the client's local mode: an in-process, pure-Python,
brute-force implementation of the API meant for tests. Its timings are NOT a performance
figure for Qdrant; they only show that the same calls work. Pass a server URL for figures
(and then they include the network round trips the cost model below counts).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time

import numpy as np

import qstore
from qstore.sample_data import load_embeddings

# How many Qdrant requests each operation makes (N = records touched, P = pages of 1024 points).
COST_MODEL = [
    ("upsert / delete / superpose", "2", "read the old versions (scroll by ids), then one batch_update_points"),
    ("get", "1 per P", "scroll filtered by record ids"),
    ("query (plain, filtered, context, Born)", "1, more if widened",
     "query_points_groups; widens ×4 while an unseen record could still enter the top k;"
     " +1 per record with more than 16 branches"),
    ("query_batch (n vectors)", "n, 8 concurrent", "one grouped query per vector"),
    ("query with tunneling", "3-4", "shared config + count, then the grouped query and one query_batch_points "
     "for every far region, concurrently"),
    ("count", "1", "count of top-branch points passing the expiry filter"),
    ("scroll", "1 per P", "scroll with the expiry (and metadata) filter"),
    ("entangle / disentangle", "2-3", "read the ids, read the group's members, one batch of set_payload"),
    ("update / measure(collapse)", "2-3", "read the record, read its groups' members, one batch_update_points"),
    ("correlation", "2", "read the record with its partners, read the other record"),
    ("sweep (delete mode)", "2", "count, then delete by the expiry filter"),
    ("sweep (collapse mode)", "1 per P + 1", "scroll the expired, one batch_update_points"),
    ("build_regions", "2 per P + 2", "scroll every vector, count, one batch of set_payload by region, save config"),
]


async def _fill(col, X: np.ndarray, batch: int = 500) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(X), batch):
        rows = X[s:s + batch]
        await col.upsert([str(i) for i in range(s, s + len(rows))], rows,
                         [{"bucket": i % 10} for i in range(s, s + len(rows))])
    return len(X) / (time.perf_counter() - t0)


async def _queries(col, Q: np.ndarray, exact: np.ndarray | None, **kw) -> tuple[float, float | None]:
    t0 = time.perf_counter()
    found = [await col.query(q, top_k=10, **kw) for q in Q]
    us = (time.perf_counter() - t0) / len(Q) * 1e6
    if exact is None:
        return us, None
    return us, float(np.mean([len({h.id for h in hits} & set(e.astype(str))) / 10 for hits, e in zip(found, exact)]))


async def _gets(col, n: int, rounds: int = 50) -> float:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for _ in range(rounds):
        await col.get([str(i) for i in rng.choice(n, 20, replace=False)])
    return (time.perf_counter() - t0) / rounds * 1e6


async def run(n: int, nq: int, qdrant_url: str | None) -> None:
    data, _, source = load_embeddings(n + nq)
    X, Q = data[:n].astype(np.float32), data[n:].astype(np.float32)
    sims = Q @ X.T
    exact = np.argsort(-sims, axis=1)[:, :10]
    mask = np.arange(n) % 10 == 3
    exact_f = np.flatnonzero(mask)[np.argsort(-sims[:, mask], axis=1)[:, :10]]
    path = tempfile.mkdtemp(prefix="qstore-stores-")
    label = f"server {qdrant_url}" if qdrant_url else "local mode (in process, brute force): NOT a performance figure"
    try:
        async with await qstore.Database.open(path, sweep_interval=None, sync=False,
                                              qdrant_url=qdrant_url or ":memory:") as db:
            cols = {s: await db.create_collection(s, dim=X.shape[1], store=s,
                                                  index={"type": "hnsw", "m": 32, "ef_construction": 100})
                    for s in ("lmdb", "qdrant")}
            rows: dict[str, dict[str, float]] = {s: {} for s in cols}
            recalls: dict[str, dict[str, float | None]] = {s: {} for s in cols}
            for s, col in cols.items():  # interleaved phase by phase below
                rows[s]["upsert (records/s)"] = await _fill(col, X)
            for phase, kw, ex in (("query µs", {}, exact), ("filtered query µs", {"filter": {"bucket": 3}}, exact_f)):
                for s, col in cols.items():
                    rows[s][phase], recalls[s][phase] = await _queries(col, Q, ex, **kw)
            for s, col in cols.items():
                rows[s]["get 20 ids µs"] = await _gets(col, n)
            for s, col in cols.items():
                amps = np.sqrt([0.5, 0.3, 0.2])
                t0 = time.perf_counter()
                for r in range(min(300, n // 3)):
                    await col.superpose(f"s{r}", [(X[3 * r + j], f"c{j}", amps[j]) for j in range(3)])
                rows[s]["superpose µs"] = (time.perf_counter() - t0) / min(300, n // 3) * 1e6
            for s, col in cols.items():
                rows[s]["Born query µs"], _ = await _queries(col, Q[: max(1, nq // 2)], None)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    print(f"\n{n} vectors of {X.shape[1]} dims ({source}), {nq} queries; Qdrant: {label}")
    print(f"load average: {open('/proc/loadavg').read().split()[:3]}\n")
    print(f"{'phase':<22}{'LMDB+FAISS':>14}{'Qdrant':>14}{'Qdrant/LMDB':>14}{'recall LMDB':>13}{'recall Qdrant':>15}")
    for phase in rows["lmdb"]:
        a, b = rows["lmdb"][phase], rows["qdrant"][phase]
        ra, rb = recalls["lmdb"].get(phase), recalls["qdrant"].get(phase)
        rec = f"{ra:>13.3f}{rb:>15.3f}" if ra is not None else ""
        print(f"{phase:<22}{a:>14.1f}{b:>14.1f}{b / a:>14.2f}{rec}")
    print("\nCost model: Qdrant requests per operation")
    for op, calls, what in COST_MODEL:
        print(f"  {op:<40}{calls:<20}{what}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--qdrant-url", default=os.environ.get("QSTORE_BENCH_QDRANT_URL"))
    args = p.parse_args()
    asyncio.run(run(args.n, args.queries, args.qdrant_url))


if __name__ == "__main__":
    main()
