"""Federated rounds over real local server nodes: round latency and accuracy per round.

    python benchmarks/federated.py [--nodes 3 6] [--rounds 10] [--local-epochs 2] [--partition iid]
    python benchmarks/federated.py --secagg 5 10 20 [--on-nodes] [--rounds 5]   # SecAgg overhead
    python benchmarks/federated.py --compression | --selection | --fednova [--rounds 20]

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
from typing import Any

import numpy as np

from qstore.federated import Coordinator, LocalParticipant, RemoteParticipant, RoundRecord
from qstore.training import VQC, Trainer
from qstore.training.reference_datasets import load_reference
from qstore_client import AsyncClient

LR, BATCH = 0.05, 16
WARM_UP_S = 600.0  # the first round waits this long: every node loads the engine


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


def stop_nodes(procs: list[subprocess.Popen]) -> None:
    """SIGTERM, then SIGKILL for a node whose event loop is still busy a minute later."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        await Coordinator(urls, rounds=1, deadline_s=WARM_UP_S, **common).run(VQC(4, 2, 2),
                                                                              validation=val)  # warm-up: engine loads
        return await Coordinator(urls, rounds=args.rounds, **common).run(VQC(4, 2, 2), validation=val)
    finally:
        stop_nodes(procs)
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


def _local(X: np.ndarray, y: np.ndarray, parts: list[np.ndarray]) -> list[LocalParticipant]:
    return [LocalParticipant((X[s], y[s]), name=f"p{i}") for i, s in enumerate(parts)]


async def secagg_overhead(args: argparse.Namespace) -> None:
    """Plain and secure rounds over the same participants: wall time and payload bytes per round."""
    data = load_reference("breast-cancer")
    X = data.X_train.astype(np.float32).astype(np.float64)
    print(f"secure aggregation overhead: VQC(4, 2 layers), 1 local epoch, {args.rounds} rounds each, plain and "
          f"secure alternating, {'server nodes over HTTP' if args.on_nodes else 'in-process participants'}")
    head = (f"{'n':>3} {'plain s/round':>13} {'secure s/round':>14} {'overhead':>8} {'plain B/part':>12} "
            f"{'secure B/part (up)':>18} {'(down)':>8} {'final acc plain/secure':>22}")
    print(head)
    print("-" * len(head))
    for n in args.secagg:
        parts = np.array_split(np.random.default_rng(args.seed).permutation(len(X)), n)
        root = procs = None
        urls: list[str] = []
        if args.on_nodes:
            root = Path(tempfile.mkdtemp(prefix=f"qstore-secagg{n}-"))
            procs, urls = start_nodes(root, n)
            for url, rows in zip(urls, parts):
                async with AsyncClient(url) as client:
                    await client.import_dataset("local", X[rows], data.y_train[rows])
        try:
            def make(timeout: float = 30.0, urls: list[str] = urls, parts: list[np.ndarray] = parts) -> list:
                return [RemoteParticipant(u, request_timeout=timeout) for u in urls] if args.on_nodes \
                    else _local(X, data.y_train, parts)

            common = dict(lr=LR, batch_size=BATCH, min_participants=2)
            # warm-up: each node loads the training engine (cirq, the numba kernels) after it listens, and its
            # first job waits for that; 20 nodes at once on 2 busy cores take minutes, past every default timeout
            for secure in (False, True):
                await Coordinator(make(WARM_UP_S), rounds=1, deadline_s=WARM_UP_S, seed=args.seed,
                                  secure_aggregation=secure, **common).run(VQC(4, 2, 2))
            # plain and secure rounds alternate, so both see the same load; each model carries on across rounds
            models = {False: VQC(4, 2, 2), True: VQC(4, 2, 2)}
            out: dict[bool, list[RoundRecord]] = {False: [], True: []}
            for r in range(args.rounds):
                for secure in (False, True):
                    out[secure] += await Coordinator(make(), rounds=1, seed=args.seed + r, secure_aggregation=secure,
                                                     **common).run(models[secure],
                                                                   validation=(data.X_test, data.y_test))
            plain, secure_h = out[False], out[True]
            t_plain = float(np.median([h.seconds for h in plain]))
            t_secure = float(np.median([h.seconds for h in secure_h]))
            b_plain = float(np.mean([np.mean(list(h.bytes_sent.values())) for h in plain]))
            up = float(np.mean([np.mean(list(h.secure["bytes_in"].values())) for h in secure_h]))
            down = float(np.mean([np.mean(list(h.secure["bytes_out"].values())) for h in secure_h]))
            print(f"{n:>3} {t_plain:>13.3f} {t_secure:>14.3f} {t_secure / t_plain:>7.2f}x {b_plain:>12.0f} "
                  f"{up:>18.0f} {down:>8.0f} {plain[-1].accuracy:>11.4f}/{secure_h[-1].accuracy:.4f}")
        finally:
            if procs:
                stop_nodes(procs)
                shutil.rmtree(root, ignore_errors=True)


async def compression_table(args: argparse.Namespace) -> None:
    data = load_reference("breast-cancer")
    X = data.X_train.astype(np.float32).astype(np.float64)
    parts = shards(data.y_train, 4, args.partition, args.alpha, np.random.default_rng(args.seed))
    print(f"compressed updates: 4 participants ({args.partition}), {args.rounds} rounds x {args.local_epochs} "
          f"local epochs, stochastic rounding, chunks of 256, error feedback")
    head = f"{'bits':>7} {'final accuracy':>14} {'bytes/participant/round':>23} {'ratio to float64':>16}"
    print(head)
    print("-" * len(head))
    for bits in (None, 16, 8, 4):
        history = await Coordinator(
            _local(X, data.y_train, parts), rounds=args.rounds, local_epochs=args.local_epochs, lr=LR,
            batch_size=BATCH, seed=args.seed, compression=None if bits is None else {"bits": bits}).run(
            VQC(4, 2, 2), validation=(data.X_test, data.y_test))
        sent = np.mean([np.mean(list(h.bytes_sent.values())) for h in history])
        print(f"{bits or 'float64':>7} {history[-1].accuracy:>14.4f} {sent:>23.0f} "
              f"{history[-1].compression_ratio:>16.2f}")


def every_one_has_rows(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Dirichlet shards can come out empty: each empty one takes one row from the largest."""
    parts = [p.copy() for p in parts]
    for i, p in enumerate(parts):
        if not len(p):
            big = max(range(len(parts)), key=lambda j: len(parts[j]))
            parts[i], parts[big] = parts[big][-1:], parts[big][:-1]
    return parts


async def selection_table(args: argparse.Namespace, fixed: tuple[float, ...] = (0.85, 0.90)) -> None:
    """QUBO against random selection, by a protocol fixed before either was run.

    Per seed (0-4): 20 participants under Dirichlet(0.3) label skew, each with at least one
    row; FedAvg, 3 local epochs (adam lr 0.1, batch 8), `args.rounds` rounds. The target is
    what FedAvg over all 20 every round reaches: the median of its last 5 rounds' test
    accuracy, minus 0.01. Random and QUBO pick 5 per round; each is scored by the rounds until
    test accuracy first reaches the target (rounds + 1 = never), the mean accuracy over all
    rounds (the area under the curve) and the rounds to the fixed targets.
    """
    data = load_reference("breast-cancer")
    X = data.X_train.astype(np.float32).astype(np.float64)
    R = args.rounds
    print(f"selection: 20 participants, Dirichlet(0.3) label skew, 5 per round, {R} rounds, 3 local epochs "
          f"(adam lr 0.1, batch 8); target = median accuracy of fedavg over all 20 in rounds {R - 4}-{R}, "
          f"minus 0.01; {R + 1} = never")
    scores: dict[str, list[tuple[int, float, list[int]]]] = {"random": [], "qubo": []}
    for seed in range(5):
        parts = every_one_has_rows(shards(data.y_train, 20, "skew", 0.3, np.random.default_rng(seed)))

        async def curve(parts: list[np.ndarray] = parts, seed: int = seed, **kwargs: Any) -> list[float]:
            history = await Coordinator(_local(X, data.y_train, parts), rounds=R, local_epochs=3, lr=0.1,
                                        batch_size=8, seed=seed, **kwargs).run(
                VQC(4, 2, 2), validation=(data.X_test, data.y_test))
            return [h.accuracy for h in history]

        full = await curve(fraction=1.0)
        target = float(np.median(full[-5:])) - 0.01
        for selection in scores:
            acc = await curve(fraction=0.25, selection=selection)
            hits = [next((r + 1 for r, a in enumerate(acc) if a >= t), R + 1) for t in (target, *fixed)]
            scores[selection].append((hits[0], float(np.mean(acc)), hits[1:]))
            print(f"seed {seed}: target {target:.4f} (all 20: final {full[-1]:.4f}); {selection:>6} reaches it at "
                  f"round {hits[0]}, mean accuracy {np.mean(acc):.4f}, final {acc[-1]:.4f}, rounds to "
                  f"{', '.join(f'{t}: {h}' for t, h in zip(fixed, hits[1:]))}; curve {np.round(acc, 3).tolist()}")
    for selection, rows in scores.items():
        hit, auc, fixed_hits = zip(*rows)
        print(f"{selection:>6}: mean rounds to target {np.mean(hit):.1f} {list(hit)}; mean accuracy over rounds "
              f"{np.mean(auc):.4f} {np.round(auc, 4).tolist()}; "
              + "; ".join(f"rounds to {t} {np.mean(h):.1f} {list(h)}" for t, h in zip(fixed, zip(*fixed_hits))))


async def fednova_table(args: argparse.Namespace) -> None:
    """FedNova against FedAvg where local step counts differ, by a protocol fixed before either was run.

    FedNova's setting (Wang et al., 2020): local SGD, each participant taking
    τ_i = epochs · ⌈n_i / batch⌉ steps, so under quantity skew τ_i differ tenfold and FedAvg
    drifts to the optimum of Σ n_i τ_i F_i instead of the global Σ n_i F_i. Per seed (0-4):
    8 participants under Dirichlet(0.5) label and quantity skew of the breast-cancer split,
    each with at least one row; all 8 every round; 2 local epochs of plain SGD (lr 0.05, batch 8,
    no momentum); `args.rounds` rounds. Scored by the global training loss (mean cross-entropy
    over the union of the participants' rows: the objective both claim to minimise) after the
    last round and averaged over rounds, and by test accuracy after the last round.
    """
    data = load_reference("breast-cancer")
    X = data.X_train.astype(np.float32).astype(np.float64)
    R = args.rounds
    print(f"fednova vs fedavg: 8 participants, Dirichlet(0.5) label and quantity skew, all every round, {R} rounds, "
          f"2 local epochs of SGD (lr 0.05, batch 8, no momentum)")
    scores: dict[str, list[tuple[float, float, float]]] = {"fedavg": [], "fednova": []}
    for seed in range(5):
        parts = every_one_has_rows(shards(data.y_train, 8, "skew", 0.5, np.random.default_rng(seed)))
        steps = [2 * -(-len(p) // 8) for p in parts]
        for strategy in scores:
            model = VQC(4, 2, 2)
            history = await Coordinator(_local(X, data.y_train, parts), rounds=R, local_epochs=2, optimizer="sgd",
                                        lr=0.05, batch_size=8, seed=seed, strategy=strategy).run(
                model, validation=(X, data.y_train))
            loss = [float(h.loss) for h in history if h.loss is not None]
            test = model.score(data.X_test, data.y_test)
            scores[strategy].append((loss[-1], float(np.mean(loss)), test))
            print(f"seed {seed} (local steps {sorted(steps)}): {strategy:>7} final training loss {loss[-1]:.4f}, "
                  f"mean over rounds {np.mean(loss):.4f}, test accuracy {test:.4f}")
    for strategy, rows in scores.items():
        final, mean, test = zip(*rows)
        print(f"{strategy:>7}: final training loss {np.mean(final):.4f} {np.round(final, 4).tolist()}; mean over "
              f"rounds {np.mean(mean):.4f}; test accuracy {np.mean(test):.4f} {np.round(test, 4).tolist()}")


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
    ap.add_argument("--secagg", type=int, nargs="+", metavar="N",
                    help="only the secure-aggregation overhead table, at these participant counts")
    ap.add_argument("--on-nodes", action="store_true", help="--secagg over real server nodes")
    ap.add_argument("--compression", action="store_true", help="only the compressed-updates table")
    ap.add_argument("--selection", action="store_true", help="only the QUBO vs random selection table")
    ap.add_argument("--fednova", action="store_true", help="only the FedNova vs FedAvg table (local SGD)")
    args = ap.parse_args()
    if args.secagg:
        asyncio.run(secagg_overhead(args))
    elif args.compression:
        asyncio.run(compression_table(args))
    elif args.selection:
        asyncio.run(selection_table(args))
    elif args.fednova:
        asyncio.run(fednova_table(args))
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
