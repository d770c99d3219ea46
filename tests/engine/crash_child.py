"""Streams batched upserts (and some deletes) and prints each acknowledged batch.

Run by test_crash.py, which SIGKILLs it at a random moment.
"""
import asyncio
import sys

import numpy as np

import qstore


async def main(path: str, start: int) -> None:
    db = await qstore.Database.open(path, snapshot_every=1500)
    try:
        col = await db.collection("crash")
    except qstore.NotFound:
        col = await db.create_collection("crash", dim=32, index={"type": "hnsw", "m": 16})
    rng = np.random.default_rng(start)
    batch = start
    while True:
        ids = [f"b{batch}-{i}" for i in range(100)]
        vecs = np.random.default_rng(batch).normal(size=(100, 32)).astype(np.float32)
        await col.upsert(ids, vecs, [{"batch": batch}] * 100)
        print(f"ACK {batch}", flush=True)
        if batch % 3 == 2 and batch > start:  # delete half of an older batch: tombstones, rebuilds, replays
            old = int(rng.integers(start, batch))
            await col.delete([f"b{old}-{i}" for i in range(50)])
            print(f"DEL {old}", flush=True)
        batch += 1


asyncio.run(main(sys.argv[1], int(sys.argv[2])))
