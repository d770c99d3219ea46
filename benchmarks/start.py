"""How long `qstore serve` takes to answer on a data directory that holds vectors: one command, a table.

    python benchmarks/start.py              # 38,000 vectors at the defaults, 5 starts
    python benchmarks/start.py --n 100000 --runs 3

The directory is written and closed once (so it holds a verified index snapshot, as after any
clean shutdown); then each run starts a fresh server process and times, from the spawn, the
first answered `GET /v1/health` and the first answered query. The goal is both within 1.5 s.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from scaling import DEFAULT, dataset  # benchmarks/scaling.py

import qstore
from qstore_client import AsyncClient
from server import free_port, wait_healthy  # benchmarks/server.py

GOAL = 1.5


async def build(path: str, n: int) -> np.ndarray:
    x, queries = dataset(n)
    async with await qstore.Database.open(path) as db:
        col = await db.create_collection("bench", dim=x.shape[1], index=DEFAULT)
        for s in range(0, n, 1000):
            await col.upsert([str(i) for i in range(s, min(n, s + 1000))], x[s:s + 1000])
    return queries


async def first_query(url: str, q: np.ndarray) -> None:
    async with AsyncClient(url) as client:
        await (await client.collection("bench")).query(q, top_k=10)


def start(path: str, q: np.ndarray) -> tuple[float, float]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "qstore_server", "--data-dir", path, "--port", str(port),
                             "--log-level", "WARNING"], stdout=subprocess.DEVNULL)
    try:
        wait_healthy(url, proc, poll=0.005)
        health = time.perf_counter() - t0
        asyncio.run(first_query(url, q))
        return health, time.perf_counter() - t0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=38_000, help="vectors in the directory (default: %(default)s)")
    ap.add_argument("--runs", type=int, default=5, help="server starts (default: %(default)s)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="qstore-start-") as tmp:
        queries = asyncio.run(build(tmp, args.n))
        times = np.array([start(tmp, queries[i]) for i in range(args.runs)])
    print(f"{args.n:,} vectors, HNSW {DEFAULT}; {args.runs} starts; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| step | best s | median s | worst s | goal |")
    print("|---|---:|---:|---:|---:|")
    for name, col in (("first health answer", 0), ("first query answer", 1)):
        t = times[:, col]
        print(f"| {name} | {t.min():.2f} | {np.median(t):.2f} | {t.max():.2f} | {GOAL} |")


if __name__ == "__main__":
    main()
