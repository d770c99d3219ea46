"""Engine commands of the ``qstore`` command line: import, export, copy, check, backup, restore,
demo, bench, train, tune.

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
    p = sub.add_parser("import", help="load a collection from .jsonl (an export) or .npy",
                       description="Load records into a collection, creating it if needed. .jsonl: a "
                                   "`qstore export` file (branches, metadata, expiry and entanglement "
                                   'groups come back) or plain {"id", "vector", "metadata"?} lines. '
                                   ".npy: an (n, dim) array, ids are row numbers.")
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--collection", help="target collection (default: the name in the export)")
    p.add_argument("--metric", default="cosine", choices=["cosine", "l2", "ip"],
                   help="for a new collection from a file without a header")
    p.add_argument("--index", default="hnsw", choices=["flat", "hnsw", "ivf"],
                   help="for a new collection from a file without a header")
    p.set_defaults(func=lambda a: asyncio.run(import_file(a)))

    p = sub.add_parser("export", help="write a collection to .jsonl (everything) or .npy (vectors)",
                       description="Export a collection. .jsonl keeps everything a record has: branches "
                                   "with contexts and complex amplitudes, metadata, remaining coherence "
                                   "time, and the entanglement groups; .npy keeps the vectors only, in id order.")
    p.add_argument("file", type=Path)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--collection", required=True)
    p.set_defaults(func=lambda a: asyncio.run(export_file(a)))

    p = sub.add_parser("check", help="verify a data directory (and repair derived state)",
                       description="Check every collection's index, snapshot, summaries, expiry table, "
                                   "entanglement groups and regions against the LMDB records. Exit status 1 "
                                   "when problems remain. Do not run it on a directory a server has open.")
    p.add_argument("data_dir", metavar="DIR")
    p.add_argument("--repair", action="store_true", help="rebuild whatever derived state is wrong")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=lambda a: asyncio.run(check_dir(a)))

    p = sub.add_parser("copy", help="copy a collection into a new one, e.g. from LMDB to Qdrant",
                       description="An exact copy (branches, amplitudes, versions, metadata, expiry, "
                                   "groups) into a new collection in --store. Interrupted, it resumes "
                                   "when run again with the same names. See docs/STORES.md.")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--store", choices=["lmdb", "qdrant"], default=None,
                   help="the target's store (default: the database's)")
    p.add_argument("--qdrant-url", help="Qdrant deployment (key in QSTORE_QDRANT_API_KEY), or a local-mode "
                                        "directory (default: the one the data directory remembers)")
    p.add_argument("--filter", type=json.loads, default=None, help="copy only records matching this filter (JSON)")
    p.set_defaults(func=lambda a: asyncio.run(copy_command(a)))

    p = sub.add_parser("backup", help="copy a data directory to a new backup directory",
                       description="A consistent copy (LMDB's compacting copy plus verified index "
                                   "snapshots and a manifest of digests). For a directory a server has "
                                   "open, use its POST /v1/admin/backup route instead.")
    p.add_argument("data_dir", metavar="DIR")
    p.add_argument("out", metavar="OUT", help="the backup directory to create")
    p.set_defaults(func=lambda a: asyncio.run(backup_dir(a)))

    p = sub.add_parser("restore", help="verify a backup and restore it into a new data directory",
                       description="Verify every file of a backup against its manifest, copy it into a "
                                   "new (or empty) data directory, open it and check it.")
    p.add_argument("backup", metavar="BACKUP")
    p.add_argument("data_dir", metavar="DIR")
    p.set_defaults(func=lambda a: asyncio.run(restore_dir(a)))

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


async def copy_command(args: argparse.Namespace) -> int:
    from qstore.stores.copy import copy_collection
    async with await qstore.Database.open(args.data_dir, qdrant_url=args.qdrant_url) as db:
        result = await copy_collection(db, args.source, args.target, store=args.store, filter=args.filter)
    print(json.dumps(result))
    return 0


async def import_file(args: argparse.Namespace) -> int:
    from qstore.export import import_jsonl
    async with await qstore.Database.open(args.data_dir) as db:
        with tqdm(desc=f"import {args.file.name}", unit="rec") as bar:
            if args.file.suffix == ".npy":
                col = await _import_npy(db, args, bar.update)
            else:
                with args.file.open() as lines:
                    col = await import_jsonl(db, lines, args.collection,
                                             {"metric": args.metric, "index": {"type": args.index}}, bar.update)
        print(f"{col.name}: {await col.count()} records")
    return 0


async def _import_npy(db: qstore.Database, args: argparse.Namespace, progress: Any) -> qstore.Collection:
    X = np.load(args.file, mmap_mode="r")
    if X.ndim != 2 or not len(X):
        raise qstore.InvalidArgument(f"{args.file}: expected a non-empty (n, dim) array, got shape {X.shape}")
    if not args.collection:
        raise qstore.InvalidArgument("--collection is required for .npy files", "invalid_name")
    try:
        col = await db.collection(args.collection)
    except qstore.NotFound:
        col = await db.create_collection(args.collection, dim=X.shape[1], metric=args.metric,
                                         index={"type": args.index})
    for start in range(0, len(X), BATCH):
        rows = np.asarray(X[start:start + BATCH], dtype=np.float32)
        await col.upsert([str(i) for i in range(start, start + len(rows))], rows)
        progress(len(rows))
    return col


async def export_file(args: argparse.Namespace) -> int:
    from qstore.export import export_jsonl
    async with await qstore.Database.open(args.data_dir) as db:
        col = await db.collection(args.collection)
        total = await col.count()
        with tqdm(total=total, desc=f"export {args.collection}", unit="rec") as bar:
            if args.file.suffix != ".npy":
                with args.file.open("w") as out:
                    await export_jsonl(col, out, bar.update)
                return 0
            vectors, cursor = [], None
            while True:
                page = await col.scroll(limit=BATCH, cursor=cursor)
                vectors.extend(r.vector for r in page.records)
                bar.update(len(page.records))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        np.save(args.file, np.asarray(vectors, dtype=np.float32).reshape(-1, col.dim))
    return 0


async def check_dir(args: argparse.Namespace) -> int:
    if not Path(args.data_dir, "lmdb").is_dir():
        print(f"{args.data_dir}: not a Q-Store data directory", file=sys.stderr)
        return 2
    async with await qstore.Database.open(args.data_dir, sweep_interval=None) as db:
        with tqdm(total=1, desc="check", unit="pass", disable=args.json) as bar:
            report = await db.check(repair=args.repair)
            bar.update(1)
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        for note in report.notes:
            print(f"repaired on open: {note}")
        for problem in report.problems:
            print(problem)
        print(f"{args.data_dir}: {report.collections} collection(s), {report.records} record(s), "
              f"{report.vectors} vector(s): {'OK' if report.ok else 'PROBLEMS (run with --repair)'}")
    return 0 if report.ok else 1


async def backup_dir(args: argparse.Namespace) -> int:
    async with await qstore.Database.open(args.data_dir, sweep_interval=None) as db:
        with tqdm(total=1, desc=f"backup to {args.out}", unit="copy") as bar:
            manifest = await db.backup(args.out)
            bar.update(1)
    size = sum(f["bytes"] for f in manifest["files"].values())
    print(f"{args.out}: {len(manifest['files'])} file(s), {size / 2**20:.1f} MiB, sequence {manifest['last_seq']}")
    return 0


async def restore_dir(args: argparse.Namespace) -> int:
    from qstore import backup
    manifest = backup.verify(args.backup)
    with tqdm(total=len(manifest["files"]), desc=f"restore {args.backup}", unit="file") as bar:
        await asyncio.to_thread(backup.restore, args.backup, args.data_dir, lambda _rel: bar.update(1))
    async with await qstore.Database.open(args.data_dir, sweep_interval=None) as db:
        report = await db.check()
        names = await db.list_collections()
    print(f"{args.data_dir}: restored sequence {manifest['last_seq']}, {len(names)} collection(s), "
          f"{report.records} record(s), check {'OK' if report.ok else 'found problems'}")
    return 0 if report.ok else 1


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
    try:
        return int(args.func(args) or 0)
    except qstore.QStoreError as exc:  # a typed refusal is a message, not a traceback
        print(f"qstore {args.command}: {exc}", file=sys.stderr)
        return 2
