"""Reads under a steady write stream, embedded and through the server: one command, a table.

    python benchmarks/mixed_load.py                    # 20,000 vectors, HNSW at the defaults
    python benchmarks/mixed_load.py --n 5000 --queries 500

One reader sends queries one after another, first alone (idle), then while a writer streams
upserts of ``--batch`` new vectors as fast as they are acknowledged (loaded). The table gives
the reader's QPS, p50, p99 and worst latency in both phases and their ratios; the goals are a
loaded QPS of at least 0.5x idle, a p99 within 10x idle and no query above 250 ms.

The loaded phase is timed twice: as the stream starts ("loaded"), while the writer is still
ahead of the graph work (an acknowledged batch may wait for it before the writer is held back),
and once reader and writer have run together for ``--settle`` seconds ("steady"), when the
writer goes at the graph work's pace. Writes/s counts the vectors acknowledged since the row
above (a timed phase is shorter than the graph work of one batch).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from typing import Any

import numpy as np

import qstore
from qstore.sample_data import load_embeddings
from qstore_client import AsyncClient
from server import indexed, serving  # benchmarks/server.py

DEFAULT_INDEX = {"type": "hnsw", "m": 32, "ef_construction": 200, "ef_search": 64}


async def reader(col: Any, queries: np.ndarray) -> np.ndarray:
    latencies = np.empty(len(queries))
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        await col.query(q, top_k=10)
        latencies[i] = time.perf_counter() - t0
    return latencies


async def writer(col: Any, x: np.ndarray, batch: int, stop: asyncio.Event, written: list[int]) -> None:
    """Upserts until ``stop``, adding the vectors acknowledged to ``written[0]``."""
    start = n = 0
    while not stop.is_set():
        chunk = x[start:start + batch]
        await col.upsert([f"w{n + i}" for i in range(len(chunk))], chunk)
        n += len(chunk)
        written[0] += len(chunk)
        start = (start + batch) % (len(x) - batch)


async def phases(col: Any, reads: Any, base: np.ndarray, stream: np.ndarray, queries: np.ndarray,
                 batch: int, settle: float) -> dict[str, tuple[np.ndarray, float, float]]:
    """``col`` takes the writes; ``reads`` (the same collection, maybe over its own connection)
    the queries."""
    for s in range(0, len(base), 1000):
        await col.upsert([str(s + i) for i in range(len(base[s:s + 1000]))], base[s:s + 1000])
    await indexed(reads)
    await reader(reads, queries[:50])  # warm-up
    t0 = time.perf_counter()
    idle = await reader(reads, queries)
    out = {"idle": (idle, time.perf_counter() - t0, 0.0)}
    stop, written = asyncio.Event(), [0]
    writing = asyncio.create_task(writer(col, stream, batch, stop, written))
    started = since = time.perf_counter()
    await asyncio.sleep(0.2)  # the stream is flowing before the reader starts
    for phase in ("loaded", "steady"):
        while phase == "steady" and time.perf_counter() - started < settle:
            await reader(reads, queries[:100])
        t0 = time.perf_counter()
        lat = await reader(reads, queries)
        elapsed = time.perf_counter() - t0
        out[phase] = (lat, elapsed, written[0] / (time.perf_counter() - since))
        since, written[0] = time.perf_counter(), 0
    stop.set()
    await writing
    return out


async def embedded(args: argparse.Namespace, base: np.ndarray, stream: np.ndarray, queries: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory(prefix="qstore-bench-") as tmp:
        async with await qstore.Database.open(tmp) as db:
            col = await db.create_collection("bench", dim=base.shape[1], index=DEFAULT_INDEX)
            return await phases(col, col, base, stream, queries, args.batch, args.settle)


async def remote(args: argparse.Namespace, base: np.ndarray, stream: np.ndarray, queries: np.ndarray) -> dict:
    with tempfile.TemporaryDirectory(prefix="qstore-bench-") as tmp, serving(tmp) as url:
        async with AsyncClient(url) as writes, AsyncClient(url) as reads:
            await writes.create_collection("bench", dim=base.shape[1], index=DEFAULT_INDEX)
            return await phases(await writes.collection("bench"), await reads.collection("bench"),
                                base, stream, queries, args.batch, args.settle)


def rows(mode: str, res: dict) -> list[str]:
    out = []
    idle_qps = idle_p99 = 0.0
    for phase, (lat, elapsed, writes) in res.items():
        qps, p50, p99, worst = len(lat) / elapsed, *(np.percentile(lat, [50, 99]) * 1e3), lat.max() * 1e3
        if phase == "idle":
            idle_qps, idle_p99 = qps, p99
        ratio = f"{qps / idle_qps:.2f} / {p99 / idle_p99:.1f}"
        out.append(f"| {mode:<8} | {phase:<6} | {qps:>8,.0f} | {p50:>7.2f} | {p99:>7.2f} | {worst:>8.1f} "
                   f"| {writes:>9,.0f} | {ratio:>13} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000, help="vectors stored before the phases (default: %(default)s)")
    ap.add_argument("--queries", type=int, default=2_000, help="queries per phase (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=500, help="vectors per streamed upsert (default: %(default)s)")
    ap.add_argument("--settle", type=float, default=4.0,
                    help="seconds of reads beside the stream before the steady phase (default: %(default)s)")
    ap.add_argument("--mode", choices=["embedded", "server"], action="append", help="default: both")
    args = ap.parse_args()
    data, _, source = load_embeddings()
    rng = np.random.default_rng(0)
    base = data[:args.n] if len(data) >= args.n else data[rng.integers(0, len(data), args.n)]
    stream = data[rng.integers(0, len(data), 20 * args.batch)]
    queries = data[rng.integers(0, len(data), args.queries)]
    print(f"data: {source}; {args.n} stored, index {DEFAULT_INDEX}; writer batches of {args.batch}; "
          f"{args.queries} queries per phase, steady after {args.settle:g} s of stream; "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    print("| mode     | phase  |      QPS | p50 ms  | p99 ms  |   max ms | writes/s  | QPS / p99 vs idle |")
    print("|----------|--------|---------:|--------:|--------:|---------:|----------:|--------------:|")
    for mode in args.mode or ["embedded", "server"]:
        res = asyncio.run(embedded(args, base, stream, queries) if mode == "embedded"
                          else remote(args, base, stream, queries))
        print("\n".join(rows(mode, res)), flush=True)


if __name__ == "__main__":
    main()
