"""Runs one long operation over and over between acknowledged writes; test_crash_windows.py
SIGKILLs it at random moments.

    python fault_child.py DIR MODE START

Every round upserts batch ``b`` into the collection "keep" and prints ``ACK b``, then runs the
mode's long operation, printing ``BEGIN b`` before it and ``DONE b`` once it is acknowledged:
  snapshot  write keep's index snapshot, ten times over
  ivf       create "ivf<b>" and insert past its training size (IVF training)
  regions   rebuild keep's tunneling regions
  hnsw      delete half of an older batch of keep (tombstones past 20% start an HNSW rebuild)
  drop      create "tmp<b>", fill and snapshot it, then drop it
"""
import asyncio
import sys

import numpy as np

import qstore

DIM = 32
BATCH = 400


def vectors(b: int, n: int = BATCH) -> np.ndarray:
    return np.random.default_rng(b).normal(size=(n, DIM)).astype(np.float32)


async def main(path: str, mode: str, start: int) -> None:
    db = await qstore.Database.open(path, snapshot_every=10**9, sweep_interval=None)
    loop = asyncio.get_running_loop()
    try:
        keep = await db.collection("keep")
    except qstore.NotFound:
        keep = await db.create_collection("keep", dim=DIM, index={"type": "hnsw", "m": 16})
    rng = np.random.default_rng(start)
    b = start
    while True:
        await keep.upsert([f"b{b}-{i}" for i in range(BATCH)], vectors(b), [{"batch": b}] * BATCH)
        print(f"ACK {b}", flush=True)
        print(f"BEGIN {b}", flush=True)
        if mode == "snapshot":
            await keep.count()  # indexed
            for _ in range(10):  # a wide window: most kills land inside a snapshot write
                keep._unsnapshotted += 1
                await loop.run_in_executor(None, keep.snapshot)
        elif mode == "ivf":
            col = await db.create_collection(f"ivf{b}", dim=DIM, index={"type": "ivf", "nlist": 16})
            await col.upsert([str(i) for i in range(800)], vectors(10_000 + b, 800))
            await col.count()  # trained
        elif mode == "regions":
            await keep.build_regions(8, seed=b)
        elif mode == "hnsw":
            if b > start:
                old = int(rng.integers(start, b))
                await keep.delete([f"b{old}-{i}" for i in range(BATCH // 2)])
                print(f"DEL {old}", flush=True)
        elif mode == "drop":
            col = await db.create_collection(f"tmp{b}", dim=DIM, index={"type": "hnsw", "m": 16})
            await col.upsert([str(i) for i in range(BATCH)], vectors(20_000 + b))
            await col.count()
            await loop.run_in_executor(None, col.snapshot)
            await db.drop_collection(f"tmp{b}")
        print(f"DONE {b}", flush=True)
        b += 1


asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
