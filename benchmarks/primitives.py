"""Cost of the quantum-native primitives relative to plain search.

    python benchmarks/primitives.py [--n 10000] [--queries 500]

On the shared embeddings: query latency with superposed records (4 branches each, the
same total number of vectors) relative to plain records, and tunneling search relative
to plain search on the same collection. Recall@10 is measured against brute force (exact
nearest neighbours, or the exact Born / context ranking): Born-weighted ranking is exact up
to the index's own recall (the threshold algorithm widens the candidate pool until no unseen
record can enter the top k), which is what it costs over plain search.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time

import numpy as np

import qstore
from qstore.sample_data import load_embeddings

INDEX = {"type": "hnsw", "m": 32, "ef_construction": 100, "ef_search": 64}


async def timed(col: qstore.Collection, Q: np.ndarray, exact: np.ndarray | None = None,
                **kw) -> tuple[float, float | None]:
    """µs per query, and recall@10 against ``exact`` (the true top-10 ids per query)."""
    t0 = time.perf_counter()
    found = []
    for i, q in enumerate(Q):
        found.append(await col.query(q, top_k=10, **({**kw, "seed": i} if "tunneling" in kw else kw)))
    us = (time.perf_counter() - t0) / len(Q) * 1e6
    if exact is None:
        return us, None
    return us, float(np.mean([len({h.id for h in hits} & set(e.astype(str))) / 10 for hits, e in zip(found, exact)]))


async def run(n: int, nq: int) -> None:
    data, _, source = load_embeddings(n + nq)
    X, Q = data[:n], data[n:]
    path = tempfile.mkdtemp(prefix="qstore-prim-")
    rows = []
    try:
        async with await qstore.Database.open(path, sweep_interval=None, sync=False) as db:
            plain = await db.create_collection("plain", dim=X.shape[1], index=INDEX)
            for s in range(0, n, 1000):
                await plain.upsert([str(i) for i in range(s, min(s + 1000, n))], X[s:s + 1000])
            sup = await db.create_collection("superposed", dim=X.shape[1], index=INDEX)
            amps = np.sqrt([0.4, 0.3, 0.2, 0.1])
            for r in range(n // 4):
                await sup.superpose(str(r), [(X[4 * r + j], f"c{j}", amps[j]) for j in range(4)])
            sims = Q @ X.T  # unit rows: cosine
            branch_sims = sims[:, :4 * (n // 4)].reshape(len(Q), n // 4, 4)
            def top10(scores: np.ndarray) -> np.ndarray:
                return np.argsort(-scores, axis=1)[:, :10]
            base, recall = await timed(plain, Q, top10(sims))
            rows.append(("plain records", base, 1.0, recall))
            t, recall = await timed(sup, Q, top10(branch_sims @ amps ** 2))
            rows.append(("superposed, Born-weighted", t, t / base, recall))
            t, recall = await timed(sup, Q, top10(branch_sims[:, :, 1]), context="c1")
            rows.append(("superposed, context='c1'", t, t / base, recall))
            await plain.build_regions()
            for strength in (0.5, 2.0, 8.0):
                t, _ = await timed(plain, Q, tunneling=strength)
                rows.append((f"tunneling t={strength}", t, t / base, None))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    print(f"data: {source}  vectors={n} queries={nq} index=hnsw(m=32, ef=64) top_k=10")
    print(f"{'workload':<28} {'µs/query':>10} {'× plain':>8} {'recall@10':>10}")
    for name, us, ratio, recall in rows:
        print(f"{name:<28} {us:>10.0f} {ratio:>8.2f} {'' if recall is None else f'{recall:.3f}':>10}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000, help="vectors (superposed: n/4 records × 4 branches)")
    ap.add_argument("--queries", type=int, default=500)
    args = ap.parse_args()
    asyncio.run(run(args.n, args.queries))


if __name__ == "__main__":
    main()
