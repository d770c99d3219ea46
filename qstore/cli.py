"""Engine commands of the ``qstore`` command line: import, export, demo, bench, train, tune.

The entry point itself (``qstore_server.command``) adds ``serve``; dependencies point
one way, so nothing here imports the server.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import qstore
from qstore.sample_data import load_embeddings

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
BATCH = 1000


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="load vectors (.npy or .jsonl) into a collection",
                       description="Load vectors into a collection, creating it if needed. "
                                   ".npy: an (n, dim) array, ids are row numbers. .jsonl: one "
                                   '{"id", "vector", "metadata"?} object per line.')
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--collection", required=True)
    p.add_argument("--metric", default="cosine", choices=["cosine", "l2", "ip"])
    p.add_argument("--index", default="hnsw", choices=["flat", "hnsw", "ivf"])
    p.set_defaults(func=lambda a: asyncio.run(import_file(a)))

    p = sub.add_parser("export", help="write a collection to .npy or .jsonl",
                       description="Export a collection's records (.jsonl keeps ids, metadata and "
                                   "branches; .npy keeps the vectors only, in id order).")
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--collection", required=True)
    p.set_defaults(func=lambda a: asyncio.run(export_file(a)))

    p = sub.add_parser("demo", help="a short end-to-end tour on the bundled embeddings",
                       description="Store real sentence embeddings, search them, and try the quantum "
                                   "primitives, in an embedded data directory.")
    p.add_argument("--data-dir", default="./qstore-data")
    p.add_argument("--n", type=int, default=5000, help="sentences to load (default: %(default)s)")
    p.set_defaults(func=lambda a: asyncio.run(demo(a)))

    p = sub.add_parser("bench", help="run the benchmarks (each prints a table)",
                       description=f"Run benchmark scripts from {BENCHMARKS}.")
    p.add_argument("names", nargs="*", help="benchmark names, e.g. vector_search (default: all)")
    p.set_defaults(func=bench)

    from qstore.federated.command import add_federate_parser
    from qstore.training.command import add_train_parser
    from qstore.training.tune_command import add_tune_parser
    add_train_parser(sub)
    add_tune_parser(sub)
    add_federate_parser(sub)


async def import_file(args: argparse.Namespace) -> int:
    async with await qstore.Database.open(args.data_dir) as db:
        rows = _read_rows(args.file)
        first = next(rows, None)
        if first is None:
            print(f"{args.file}: no rows", file=sys.stderr)
            return 1
        dim = len(first[1])
        try:
            col = await db.collection(args.collection)
        except qstore.NotFound:
            col = await db.create_collection(args.collection, dim=dim, metric=args.metric, index={"type": args.index})
        batch = [first]
        with tqdm(desc=f"import {args.collection}", unit="vec") as bar:
            for row in rows:
                batch.append(row)
                if len(batch) == BATCH:
                    await _upsert(col, batch)
                    bar.update(len(batch))
                    batch = []
            if batch:
                await _upsert(col, batch)
                bar.update(len(batch))
        print(f"{args.collection}: {await col.count()} records")
    return 0


def _read_rows(path: Path):
    if path.suffix == ".npy":
        X = np.load(path, mmap_mode="r")
        for i in range(len(X)):
            yield str(i), np.asarray(X[i], dtype=np.float32), {}
    else:
        with path.open() as f:
            for line in f:
                if line.strip():
                    obj = json.loads(line)
                    yield str(obj["id"]), np.asarray(obj["vector"], dtype=np.float32), obj.get("metadata") or {}


async def _upsert(col: qstore.Collection, batch: list[tuple[str, np.ndarray, dict[str, Any]]]) -> None:
    ids, vecs, mds = zip(*batch)
    await col.upsert(list(ids), np.stack(vecs), list(mds))


async def export_file(args: argparse.Namespace) -> int:
    async with await qstore.Database.open(args.data_dir) as db:
        col = await db.collection(args.collection)
        total = await col.count()
        vectors, cursor = [], None
        out = None if args.file.suffix == ".npy" else args.file.open("w")
        with tqdm(total=total, desc=f"export {args.collection}", unit="rec") as bar:
            while True:
                page = await col.scroll(limit=BATCH, cursor=cursor)
                for r in page.records:
                    if out is None:
                        vectors.append(r.vector)
                    else:
                        out.write(json.dumps({
                            "id": r.id, "vector": r.vector.tolist(), "metadata": r.metadata,
                            "branches": [{"vector": b.vector.tolist(), "context": b.context,
                                          "amplitude": [b.amplitude.real, b.amplitude.imag]} for b in r.branches],
                            "expires_at": r.expires_at}) + "\n")
                bar.update(len(page.records))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        if out is None:
            np.save(args.file, np.asarray(vectors, dtype=np.float32).reshape(-1, col.dim))
        else:
            out.close()
    return 0


async def demo(args: argparse.Namespace) -> int:
    X, texts, source = load_embeddings(args.n)
    texts = texts or [f"synthetic vector {i}" for i in range(len(X))]
    print(f"Q-Store demo: {len(X)} sentence embeddings from {source}, data in {args.data_dir}\n")
    async with await qstore.Database.open(args.data_dir) as db:
        if "sentences" in await db.list_collections():
            await db.drop_collection("sentences")
        col = await db.create_collection("sentences", dim=X.shape[1], metric="cosine",
                                         index={"type": "hnsw", "m": 32, "ef_construction": 200, "ef_search": 64})
        ids = [str(i) for i in range(len(X))]
        for s in tqdm(range(0, len(X), BATCH), desc="insert (durable)", unit="batch"):
            await col.upsert(ids[s:s + BATCH], X[s:s + BATCH], [{"text": t[:200]} for t in texts[s:s + BATCH]])
        q = 7
        print(f"\n1. nearest neighbours of: {texts[q][:90]!r}")
        for h in await col.query(X[q], top_k=4):
            print(f"   {h.score:.3f}  {h.metadata['text'][:90]}")

        print("\n2. a superposed record: one id, two meanings, amplitudes 0.8 and 0.6")
        await col.superpose("bank", [(X[11], "finance", 0.8), (X[12], "river", 0.6)],
                            metadata={"text": "<superposed>"})
        for ctx in ("finance", "river"):
            hits = await col.query(X[12], top_k=1, context=ctx)
            print(f"   query near branch 'river' with context={ctx!r}: score {hits[0].score:.3f}")
        counts: dict[str, int] = {}
        for s in range(1000):
            m = await col.measure("bank", seed=s)
            counts[m.context] = counts.get(m.context, 0) + 1
        print(f"   1,000 measurements: {counts}  (Born rule: 640 / 360)")

        print("\n3. tunneling search: plain results stay in one neighbourhood, tunneling reaches others")
        await col.build_regions(16)
        plain = await col.query(X[q], top_k=6)
        tunnel = await col.query(X[q], top_k=6, tunneling=3.0, seed=0)
        for name, hits in (("plain", plain), ("tunneling=3", tunnel)):
            print(f"   {name}:")
            for h in hits:
                print(f"     {h.score:.3f}  {h.metadata['text'][:80]}")

        print("\n4. a stored Bell state, measured 1,000 times")
        await db.put_state("bell", np.array([1, 0, 0, 1]) / np.sqrt(2))
        print(f"   {await db.measure_state('bell', shots=1000, seed=0)}")

        print("\n5. decoherence: a record with a 1-second coherence time")
        await col.upsert(["ephemeral"], X[20:21], [{"text": "gone soon"}], coherence_time=1.0)
        print(f"   now: {(await col.get(['ephemeral']))[0] is not None}", end="")
        await asyncio.sleep(1.1)
        print(f", after 1.1 s: {(await col.get(['ephemeral']))[0] is not None}")
        print(f"\n{await col.count()} records stored durably in {args.data_dir}. "
              f"Serve them with: qstore serve --data-dir {args.data_dir}")
    return 0


def bench(args: argparse.Namespace) -> int:
    if not BENCHMARKS.is_dir():
        print(f"benchmarks not found at {BENCHMARKS}; run from a source checkout", file=sys.stderr)
        return 2
    names = args.names or sorted(p.stem for p in BENCHMARKS.glob("*.py"))
    status = 0
    for name in names:
        script = BENCHMARKS / f"{name}.py"
        if not script.exists():
            print(f"no benchmark {name!r}; have: {', '.join(sorted(p.stem for p in BENCHMARKS.glob('*.py')))}",
                  file=sys.stderr)
            return 2
        print(f"== {name}", flush=True)
        status |= subprocess.call([sys.executable, str(script)])
    return status


def main(argv: list[str] | None = None, extra: Any = None) -> int:
    """The ``qstore`` command; ``extra(subparsers)`` lets the server package add ``serve``."""
    parser = argparse.ArgumentParser(prog="qstore", description="Q-Store: a quantum-native vector database.")
    parser.add_argument("--version", action="version", version=f"qstore {qstore.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if extra is not None:
        extra(sub)
    add_commands(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)
