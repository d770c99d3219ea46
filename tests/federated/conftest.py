"""Shared data and real server nodes for the federated tests.

Data: scikit-learn's breast-cancer set (standardised, PCA to 4 features, 70/30 split;
``qstore.training.reference_datasets``). Nodes: ``python -m qstore_server`` subprocesses
on free loopback ports, each holding disjoint shards of the training split as datasets
``iid`` (a random quarter) and ``skew`` (label skew: Dirichlet(α=1) class proportions).
"""
from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from qstore.training.reference_datasets import load_reference
from qstore_client import AsyncClient
from tests.servers import ServerProcess, free_port

N_NODES = 4
WARM_UP_S = 600.0
SKEW_ALPHA = 1.0


def start_nodes(root: Path, n: int) -> list[ServerProcess]:
    nodes = [ServerProcess(root / f"node{i}", wait=False) for i in range(n)]  # they boot in parallel
    try:
        for node in nodes:
            node.wait_healthy()
    except Exception:
        for node in nodes:
            node.stop()
        raise
    return nodes


@pytest.fixture
def dead_url() -> str:
    """A loopback URL nobody listens on: an unreachable participant."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    iid: list[np.ndarray]
    skew: list[np.ndarray]


def dirichlet_shards(y: np.ndarray, k: int, alpha: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Label skew: each class's rows are divided among k shards in Dirichlet(alpha) proportions."""
    shards: list[list[int]] = [[] for _ in range(k)]
    for c in np.unique(y):
        rows = rng.permutation(np.flatnonzero(y == c))
        cuts = (np.cumsum(rng.dirichlet([alpha] * k))[:-1] * len(rows)).astype(int)
        for i, part in enumerate(np.split(rows, cuts)):
            shards[i].extend(part.tolist())
    return [np.array(sorted(s)) for s in shards]


def make_split(n_shards: int, seed: int = 0) -> Split:
    data = load_reference("breast-cancer")
    # Servers store features as float32; every run here trains on exactly what they hold.
    X_train = data.X_train.astype(np.float32).astype(np.float64)
    rng = np.random.default_rng(seed)
    iid = np.array_split(rng.permutation(len(X_train)), n_shards)
    skew = dirichlet_shards(data.y_train, n_shards, SKEW_ALPHA, rng)
    return Split(X_train, data.y_train, data.X_test, data.y_test, iid, skew)


@pytest.fixture(scope="session")
def split() -> Split:
    return make_split(N_NODES)


async def warm_up(nodes: list[ServerProcess], dataset: str) -> None:
    """One round on every node, with no deadline that matters: a node loads the training engine at its
    first job (seconds, or minutes when a busy machine boots several at once), and the tests' own
    timeouts and deadlines are not about that."""
    from qstore.federated import Coordinator, RemoteParticipant
    from qstore.training import VQC

    parts = [RemoteParticipant(node.url, request_timeout=WARM_UP_S) for node in nodes]
    try:
        await Coordinator(parts, rounds=1, dataset=dataset, deadline_s=WARM_UP_S, min_participants=1).run(VQC(4, 2, 2))
    finally:
        for p in parts:
            await p.close()


async def import_shards(nodes: list[ServerProcess], split: Split) -> None:
    for i, node in enumerate(nodes):
        async with AsyncClient(node.url) as client:
            for name in ("iid", "skew"):
                rows = getattr(split, name)[i]
                await client.import_dataset(name, split.X_train[rows], split.y_train[rows])


@pytest.fixture(scope="session")
def nodes(tmp_path_factory: pytest.TempPathFactory, split: Split):
    """Four live servers, each with its disjoint `iid` and `skew` shards imported."""
    started = start_nodes(tmp_path_factory.mktemp("federated-nodes"), N_NODES)
    try:
        asyncio.run(import_shards(started, split))
        asyncio.run(warm_up(started, "iid"))
        yield started
    finally:
        for node in started:
            node.stop()


@pytest.fixture
def spare(tmp_path: Path, split: Split):
    """A fifth node holding the same `iid` shard as node 3, free to be killed or stopped."""
    node = start_nodes(tmp_path, 1)[0]

    async def load() -> None:
        async with AsyncClient(node.url) as client:
            await client.import_dataset("iid", split.X_train[split.iid[3]], split.y_train[split.iid[3]])
    try:
        asyncio.run(load())
        asyncio.run(warm_up([node], "iid"))
        yield node
    finally:
        if node.proc.poll() is None:
            node.proc.send_signal(signal.SIGCONT)  # a stopped process cannot handle SIGTERM
        node.stop()
