"""Q-Store beside Chroma on the same data, same HNSW parameters, same run: one command, a table.

    pip install -e ".[bench]" && python benchmarks/peers.py
    python benchmarks/peers.py --n 5000 --queries 500

Both engines get the Q-Store defaults (HNSW m=32, ef_construction=200, ef_search=64, cosine).
Rows: insert until searchable (batches of 1,000), one caller's QPS and p50/p99 embedded, one
client and 16 concurrent clients over each engine's own server on loopback, and recall@10
against exact search. Query phases alternate between the engines (``--rounds``, best kept),
so neither gains from running second. Ratios are Q-Store / Chroma.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import numpy as np

import qstore
from qstore.sample_data import load_embeddings
from qstore_client import AsyncClient
from server import free_port, indexed, serving  # benchmarks/server.py

M, EF_CONSTRUCTION, EF_SEARCH = 32, 200, 64
QSTORE_INDEX = {"type": "hnsw", "m": M, "ef_construction": EF_CONSTRUCTION, "ef_search": EF_SEARCH}
CHROMA_CONFIG = {"hnsw": {"space": "cosine", "max_neighbors": M, "ef_construction": EF_CONSTRUCTION,
                          "ef_search": EF_SEARCH}}

Search = Callable[[np.ndarray], Awaitable[list[str]]]


async def timed_queries(search: Search, Q: np.ndarray) -> tuple[float, np.ndarray, list[list[str]]]:
    lat, found = np.empty(len(Q)), []
    t0 = time.perf_counter()
    for i, q in enumerate(Q):
        s = time.perf_counter()
        found.append(await search(q))
        lat[i] = time.perf_counter() - s
    return len(Q) / (time.perf_counter() - t0), lat, found


async def concurrent_qps(searches: list[Search], Q: np.ndarray) -> float:
    async def loop(search: Search, part: np.ndarray) -> None:
        for q in part:
            await search(q)
    t0 = time.perf_counter()
    await asyncio.gather(*(loop(s, p) for s, p in zip(searches, np.array_split(Q, len(searches)))))
    return len(Q) / (time.perf_counter() - t0)


def recall(found: list[list[str]], truth: np.ndarray) -> float:
    return float(np.mean([len({int(i) for i in f} & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth)]))


async def insert(upsert: Callable[[list[str], np.ndarray], Awaitable[Any]], X: np.ndarray,
                 searchable: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    for s in range(0, len(X), 1000):
        await upsert([str(i) for i in range(s, min(s + 1000, len(X)))], X[s:s + 1000])
    await searchable()
    return len(X) / (time.perf_counter() - t0)


class Engine(Protocol):
    """An engine's two sides: ``load`` inserts embedded and through its server and returns both
    rates; ``searches`` gives the embedded search, one server client's and ``n`` more clients'."""

    name: str

    async def load(self, X: np.ndarray) -> tuple[float, float]: ...

    async def searches(self, n_clients: int) -> tuple[Search, Search, list[Search]]: ...

    async def close(self) -> None: ...


def wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


class QStore:
    name = "qstore"

    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="peers-qstore-")
        self.stack = contextlib.ExitStack()
        self.clients: list[AsyncClient] = []

    async def load(self, X: np.ndarray) -> tuple[float, float]:
        self.db = await qstore.Database.open(os.path.join(self.tmp, "embedded"))
        self.col = await self.db.create_collection("bench", dim=X.shape[1], index=QSTORE_INDEX)
        embedded = await insert(self.col.upsert, X, lambda: indexed(self.col))
        self.url = self.stack.enter_context(serving(os.path.join(self.tmp, "server")))
        client = AsyncClient(self.url)
        self.clients.append(client)
        remote = await client.create_collection("bench", dim=X.shape[1], index=QSTORE_INDEX)
        return embedded, await insert(remote.upsert, X, lambda: indexed(remote))

    async def searches(self, n_clients: int) -> tuple[Search, Search, list[Search]]:
        def of(col: Any) -> Search:
            async def search(q: np.ndarray) -> list[str]:
                return [h.id for h in await col.query(q, top_k=10)]
            return search
        self.clients += [AsyncClient(self.url) for _ in range(n_clients)]
        remote = [of(await c.collection("bench")) for c in self.clients]
        return of(self.col), remote[0], remote[1:]

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients))
        await self.db.close()
        self.stack.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


class Chroma:
    name = "chroma"

    def __init__(self) -> None:
        import chromadb  # the bench extra
        self.chromadb = chromadb
        self.tmp = tempfile.mkdtemp(prefix="peers-chroma-")
        self.proc: subprocess.Popen[bytes] | None = None

    async def load(self, X: np.ndarray) -> tuple[float, float]:
        client = self.chromadb.PersistentClient(path=os.path.join(self.tmp, "embedded"))
        self.col = client.create_collection("bench", configuration=CHROMA_CONFIG)

        async def upsert(ids: list[str], x: np.ndarray) -> None:
            await asyncio.to_thread(self.col.upsert, ids=ids, embeddings=x)

        async def count() -> None:
            await asyncio.to_thread(self.col.count)
        embedded = await insert(upsert, X, count)
        self.port = free_port()
        chroma = shutil.which("chroma") or os.path.join(os.path.dirname(sys.executable), "chroma")
        self.proc = subprocess.Popen([chroma, "run", "--path", os.path.join(self.tmp, "server"),
                                      "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(f"http://127.0.0.1:{self.port}/api/v2/heartbeat", self.proc)
        remote = await (await self._client()).create_collection("bench", configuration=CHROMA_CONFIG)
        return embedded, await insert(lambda ids, x: remote.upsert(ids=ids, embeddings=x), X, remote.count)

    async def _client(self) -> Any:
        return await self.chromadb.AsyncHttpClient(host="127.0.0.1", port=self.port)

    async def searches(self, n_clients: int) -> tuple[Search, Search, list[Search]]:
        async def embedded(q: np.ndarray) -> list[str]:
            return self.col.query(query_embeddings=q[None, :], n_results=10, include=[])["ids"][0]

        def of(col: Any) -> Search:
            async def search(q: np.ndarray) -> list[str]:
                return (await col.query(query_embeddings=q[None, :], n_results=10, include=[]))["ids"][0]
            return search
        remote = [of(await (await self._client()).get_collection("bench")) for _ in range(n_clients + 1)]
        return embedded, remote[0], remote[1:]

    async def close(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        shutil.rmtree(self.tmp, ignore_errors=True)


async def run(args: argparse.Namespace) -> None:
    data, _, source = load_embeddings(args.n + args.queries)
    X, Q = np.ascontiguousarray(data[:args.n]), np.ascontiguousarray(data[args.n:])
    Xn, Qn = (a / np.linalg.norm(a, axis=1, keepdims=True) for a in (X, Q))
    truth = np.argsort(-(Qn @ Xn.T), axis=1)[:, :10]
    print(f"data: {source}; n={len(X)} queries={len(Q)}; HNSW m={M} ef_construction={EF_CONSTRUCTION} "
          f"ef_search={EF_SEARCH}; {args.rounds} alternating rounds, best kept; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    engines: list[Engine] = [QStore(), Chroma()]
    rows: dict[str, dict[str, float]] = {e.name: {} for e in engines}
    try:
        plans = {}
        for e in engines:
            rows[e.name]["insert, embedded (vectors/s)"], rows[e.name]["insert, server (vectors/s)"] = \
                await e.load(X)
            plans[e.name] = await e.searches(args.clients)
        for _ in range(args.rounds):
            for e in engines:
                emb, one, many = plans[e.name]
                r = rows[e.name]
                qps, lat, found = await timed_queries(emb, Q)
                if qps > r.get("embedded, 1 caller (QPS)", 0):
                    r["embedded, 1 caller (QPS)"] = qps
                    r["embedded p50 (ms)"], r["embedded p99 (ms)"] = np.percentile(lat, [50, 99]) * 1e3
                    r["recall@10"] = recall(found, truth)
                qps, lat, _ = await timed_queries(one, Q)
                if qps > r.get("server, 1 client (QPS)", 0):
                    r["server, 1 client (QPS)"] = qps
                    r["server p50 (ms)"], r["server p99 (ms)"] = np.percentile(lat, [50, 99]) * 1e3
                r[f"server, {args.clients} clients (QPS)"] = max(r.get(f"server, {args.clients} clients (QPS)", 0),
                                                                  await concurrent_qps(many, Q))
    finally:
        for e in engines:
            await e.close()
    print(f"| {'workload':<32} | {'Q-Store':>9} | {'Chroma':>9} | {'ratio':>6} |")
    print(f"|{'-' * 34}|{'-' * 11}:|{'-' * 11}:|{'-' * 7}:|")
    for key, value in rows["qstore"].items():
        other = rows["chroma"][key]
        print(f"| {key:<32} | {value:>9,.{3 if value < 10 else 0}f} | {other:>9,.{3 if other < 10 else 0}f} "
              f"| {value / other if other else 0:>6.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=19_000, help="vectors stored (default: %(default)s)")
    ap.add_argument("--queries", type=int, default=1_000, help="held-out queries (default: %(default)s)")
    ap.add_argument("--clients", type=int, default=16, help="concurrent server clients (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating query rounds (default: %(default)s)")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
