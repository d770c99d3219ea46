"""Federated rounds over real local server nodes: round latency and accuracy per round.

    python benchmarks/federated.py [--nodes 3 6] [--rounds 10] [--local-epochs 2] [--partition iid]

For each node count N, starts N `python -m qstore_server` processes on loopback, imports
a disjoint shard of scikit-learn's breast-cancer training split into each (standardised,
PCA to 4 features; `iid` random shards or `skew` Dirichlet(alpha) label skew) and runs
federated rounds (FedAvg by default) of a 4-qubit, 2-layer VQC. One warm-up round first lets every node
compile its simulator kernels. Per round: wall time, the slowest node's local training
time (as it reports it), the rest (job start and polling over HTTP, aggregation,
validation) and test accuracy. Centralised training on the union, with the same
optimizer and epochs, is the reference.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from qstore.federated import Coordinator, RoundRecord
from qstore.training import VQC, Trainer
from qstore.training.reference_datasets import load_reference
from qstore_client import AsyncClient

LR, BATCH = 0.05, 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nodes(root: Path, n: int) -> tuple[list[subprocess.Popen], list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QSTORE_")}
    procs, urls = [], []
    for i in range(n):
        port = free_port()
        log = open(root / f"node{i}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "qstore_server", "--data-dir", str(root / f"node{i}"),
                                       "--port", str(port), "--host", "127.0.0.1"], stdout=log,
                                      stderr=subprocess.STDOUT, env=env))
        urls.append(f"http://127.0.0.1:{port}")
    for proc, url in zip(procs, urls):
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"node {url} did not start; see {root}")
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
    return procs, urls


def shards(y: np.ndarray, n: int, partition: str, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    if partition == "iid":
        return np.array_split(rng.permutation(len(y)), n)
    parts: list[list[int]] = [[] for _ in range(n)]
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        cuts = (np.cumsum(rng.dirichlet([alpha] * n))[:-1] * len(rows)).astype(int)
        for i, part in enumerate(np.split(rows, cuts)):
            parts[i].extend(part.tolist())
    return [np.array(sorted(p)) for p in parts]


async def federate(n: int, args: argparse.Namespace, X: np.ndarray, y: np.ndarray,
                   val: tuple[np.ndarray, np.ndarray]) -> list[RoundRecord]:
    root = Path(tempfile.mkdtemp(prefix=f"qstore-fed{n}-"))
    procs, urls = start_nodes(root, n)
    try:
        for url, rows in zip(urls, shards(y, n, args.partition, args.alpha, np.random.default_rng(args.seed))):
            async with AsyncClient(url) as client:
                await client.import_dataset("local", X[rows], y[rows])
        common = dict(local_epochs=args.local_epochs, lr=LR, batch_size=BATCH, seed=args.seed,
                      strategy=args.strategy)
        await Coordinator(urls, rounds=1, **common).run(VQC(4, 2, 2), validation=val)  # warm-up: kernels compile
        return await Coordinator(urls, rounds=args.rounds, **common).run(VQC(4, 2, 2), validation=val)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        shutil.rmtree(root, ignore_errors=True)


async def centralised(args: argparse.Namespace, X: np.ndarray, y: np.ndarray,
                      val: tuple[np.ndarray, np.ndarray]) -> float:
    trainer = Trainer(None, VQC(4, 2, 2), lr=LR, batch_size=BATCH, seed=args.seed, progress_bar=False)
    await trainer.fit((X, y), epochs=args.rounds * args.local_epochs)
    return await trainer.evaluate(*val)


async def run(args: argparse.Namespace) -> None:
    data = load_reference("breast-cancer")
    X = data.X_train.astype(np.float32).astype(np.float64)  # what the nodes store
    val = (data.X_test, data.y_test)
    results = {n: await federate(n, args, X, data.y_train, val) for n in args.nodes}
    reference = await centralised(args, X, data.y_train, val)
    print(f"data: breast-cancer ({len(X)} train / {len(val[0])} test rows, PCA to 4), {args.partition} shards; "
          f"VQC(4 qubits, 2 layers); fedavg, {args.local_epochs} local epoch(s)/round, adam lr={LR}, batch {BATCH}")
    head = f"{'round':>5}"
    for n in args.nodes:
        head += f" | {f'{n} nodes: round s':>17} {'train s':>7} {'other s':>7} {'accuracy':>8}"
    print(head)
    print("-" * len(head))
    for r in range(args.rounds):
        line = f"{r + 1:>5}"
        for n in args.nodes:
            h = results[n][r]
            train = max(h.train_seconds.values(), default=0.0)
            line += f" | {h.seconds:>17.3f} {train:>7.3f} {h.seconds - train:>7.3f} {h.accuracy:>8.4f}"
        print(line)
    print("-" * len(head))
    for n in args.nodes:
        secs = np.array([h.seconds for h in results[n]])
        print(f"{n} nodes: median round {np.median(secs):.3f} s (p90 {np.percentile(secs, 90):.3f} s), "
              f"final accuracy {results[n][-1].accuracy:.4f}; centralised on the union {reference:.4f} "
              f"({args.rounds * args.local_epochs} epochs)")
    if args.json:
        args.json.write_text(json.dumps({"centralised": reference,
                                         **{str(n): [h.to_dict() for h in results[n]] for n in args.nodes}}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, nargs="+", default=[3, 6], help="node counts to run (default: 3 6)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--local-epochs", type=int, default=2)
    ap.add_argument("--partition", choices=("iid", "skew"), default="iid")
    ap.add_argument("--alpha", type=float, default=1.0, help="skew: Dirichlet concentration (smaller: harsher)")
    ap.add_argument("--strategy", default="fedavg", help="aggregation strategy (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write every round record here")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
