"""Reads beside a write stream: a commit's vectors are searchable (exactly, in the fresh set)
before the writer is answered, and their graph work runs in the background, so queries never
wait for it, never miss an acknowledged write and still return top_k."""
from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

import qstore
from qstore.index import IndexSpec, VectorIndex
from qstore.index.snapshot import SnapshotWriter, read_snapshot
from qstore.storage import codec

DIM = 16
NONE = np.empty(0, np.int64)


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _snapshot(index: VectorIndex, path) -> tuple[int, int, int]:
    """(sequence, live vectors, tombstones) of a snapshot written and read back."""
    writer = SnapshotWriter(str(path))
    seq, count = index.snapshot(writer)
    writer.commit(1, seq, count)
    snap = read_snapshot(str(path))
    assert (snap.seq, snap.count) == (seq, count)
    return seq, count, len(snap.tombstones)


def test_fresh_vectors_are_searched_exactly_until_the_graph_takes_them(tmp_path):
    rng = np.random.default_rng(0)
    index = VectorIndex(DIM, "cosine", IndexSpec.parse({"type": "hnsw", "m": 16, "ef_construction": 64}))
    base = _unit(rng, 300)
    index.apply(np.arange(300), base, NONE, seq=1)
    q = _unit(rng, 1)  # not stored

    near = index.prepare(q + 0.05 * _unit(rng, 192))  # nearer the query than anything stored
    fresh_ids = np.arange(1000, 1000 + len(near))
    index.publish(fresh_ids, near, NONE)
    assert index.fresh == len(near) and index.size == 300 + len(near)
    scores, ids = index.search(q, 10)
    truth = fresh_ids[np.argsort(-(near @ q[0]))[:10]]
    assert set(ids[0].tolist()) == set(truth.tolist())  # exact (ties may swap places)
    assert np.allclose(scores[0], np.sort(near @ q[0])[::-1][:10], atol=1e-5)
    assert np.array_equal(index.vectors(np.array([5, 1000, 7])), np.stack([base[5], near[0], base[7]]))

    # A snapshot holds the graph alone; the fresh set comes back by replaying the change log.
    seq, count, tombs = _snapshot(index, tmp_path / "a.faiss")
    assert (seq, count, tombs) == (1, 300, 0)

    # Removing a fresh vector drops it; removing a graph vector leaves a tombstone.
    index.publish(NONE, near[:0], np.array([1000, 0]))
    assert index.tombstones == 1 and index.fresh == len(near) - 1
    assert 1000 not in index.search(q, 20)[1][0] and 0 not in index.search(q, 20)[1][0]
    assert 1000 not in index.ids() and 1001 in index.ids()

    index.integrate(seq=2)
    assert index.fresh == 0 and index.applied_seq == 2 and index.size == 299 + len(near) - 1
    assert set(index.search(q, 10)[1][0].tolist()) <= set(fresh_ids[1:].tolist())
    assert _snapshot(index, tmp_path / "b.faiss")[1] == index.size


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("nq", [1, 3])
def test_graph_and_fresh_answers_merge_into_the_exact_top_k(metric, nq):
    """With an exact (flat) graph, the merged answer is the exact top k over graph and fresh
    vectors together, best first, padded with -1 when fewer exist."""
    rng = np.random.default_rng(5)
    index = VectorIndex(DIM, metric, IndexSpec.parse({"type": "flat"}))
    graph, fresh = rng.standard_normal((40, DIM)).astype(np.float32), rng.standard_normal((25, DIM)).astype(np.float32)
    index.apply(np.arange(40), index.prepare(graph), NONE, seq=1)
    index.publish(np.arange(100, 125), index.prepare(fresh), NONE)
    both, ids = index.prepare(np.concatenate([graph, fresh])), np.concatenate([np.arange(40), np.arange(100, 125)])
    q = index.prepare(rng.standard_normal((nq, DIM)).astype(np.float32))
    sims = -((q[:, None, :] - both[None]) ** 2).sum(-1) if metric == "l2" else q @ both.T
    for k in (7, 80):
        scores, found = index.search(q, k)
        for r in range(nq):
            order = np.argsort(-sims[r], kind="stable")[:k]
            assert set(found[r][found[r] >= 0].tolist()) == set(ids[order].tolist())
            assert np.allclose(scores[r][:len(order)], sims[r][order], atol=1e-4)
            assert (found[r][len(order):] == -1).all()


async def test_a_query_never_waits_for_graph_work(tmp_path):
    """The applier is held on a hook of an earlier write; a later upsert is acknowledged and a
    query finds it while no graph work has run. (Before, reads waited for every acknowledged
    batch's graph work.)"""
    rng = np.random.default_rng(2)
    async with await qstore.Database.open(str(tmp_path / "db")) as db:
        col = await db.create_collection("c", dim=DIM, index={"type": "hnsw", "m": 16, "ef_construction": 64})
        await col.upsert([f"b{i}" for i in range(200)], _unit(rng, 200))
        await db._storage.settle()  # the base is in the graph
        release = threading.Event()
        await db._storage.write(lambda ctx: ctx.apply_later(release.wait))  # the applier waits here
        try:
            x = _unit(rng, 3)
            await col.upsert(["new0", "new1", "new2"], x)
            assert col.index.fresh == 3  # acknowledged, not in the graph
            hits = await asyncio.wait_for(col.query(x[1], top_k=1), 60)
            assert hits[0].id == "new1"
            batch = await asyncio.wait_for(col.query_batch(x, top_k=1), 60)
            assert [h[0].id for h in batch] == ["new0", "new1", "new2"]
            assert await asyncio.wait_for(col.count(), 60) == 203
            assert col.index.fresh == 3  # still nothing graphed: nobody waited for it
        finally:
            release.set()
        await db._storage.settle()
        assert col.index.fresh == 0


async def test_queries_beside_a_write_stream_see_every_acknowledged_write(tmp_path):
    """Each query asks for the vector of the last record acknowledged before it began: it must
    come first, and every query returns top_k records that were at least committed."""
    rng = np.random.default_rng(1)
    async with await qstore.Database.open(str(tmp_path / "db")) as db:
        col = await db.create_collection("c", dim=DIM, index={"type": "hnsw", "m": 16, "ef_construction": 64})
        base = _unit(rng, 500)
        await col.upsert([f"base{i}" for i in range(500)], base)
        written = {f"base{i}": v for i, v in enumerate(base)}  # committed or being committed
        last = "base499"
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal last
            n = 0
            while not stop.is_set():
                ids = [f"w{n + i}" for i in range(256)]
                x = _unit(rng, len(ids))
                written.update(zip(ids, x))
                await col.upsert(ids, x)
                last = ids[-1]
                n += len(ids)

        task = asyncio.create_task(writer())
        bad = []
        for _ in range(50):
            want = last
            hits = await col.query(written[want], top_k=10)
            if len(hits) != 10 or hits[0].id != want or not {h.id for h in hits} <= written.keys():
                bad.append((want, [h.id for h in hits]))
            await asyncio.sleep(0)
        stop.set()
        await task
        assert bad == []


async def test_pruning_the_change_sequence_waits_for_no_graph_work(tmp_path):
    """After a snapshot the change sequence is pruned in the writer thread. With the applier held
    on an earlier write's graph work, the prune and a write after it are still answered (it used
    to wait for every queued batch's graph work, holding all writes back), and a change
    committed but not yet graphed stays in the sequence, which is all a restart has of it."""
    rng = np.random.default_rng(3)
    async with await qstore.Database.open(str(tmp_path / "db"), sweep_interval=None) as db:
        col = await db.create_collection("c", dim=DIM, index={"type": "hnsw", "m": 16, "ef_construction": 64})
        await col.upsert([f"b{i}" for i in range(100)], _unit(rng, 100))
        await db._storage.settle()
        await asyncio.get_running_loop().run_in_executor(None, col.snapshot)
        snapped = col.snapshot_seq
        assert snapped == col.index.applied_seq > 0
        release = threading.Event()
        await db._storage.write(lambda ctx: ctx.apply_later(release.wait))  # the applier waits here
        try:
            await col.upsert(["late"], _unit(rng, 1))  # committed, not graphed
            assert col.index.applied_seq == snapped
            await asyncio.wait_for(db._prune_changes(), 10)
            await asyncio.wait_for(db.put_state("after", np.array([1.0, 0.0])), 10)  # the writer is free
            seqs = await db._storage.read(lambda txn: [codec.read_u64(k)
                                                       for k, _ in txn.cursor(db._storage.tables["changes"])])
            assert seqs and min(seqs) == snapped + 1  # the history before the snapshot is gone
        finally:
            release.set()
        await db._storage.settle()
        assert [h.id for h in await col.query((await col.get(["late"]))[0].vector, top_k=1)] == ["late"]


def test_while_searches_come_in_a_change_is_graphed_up_to_its_own_vectors():
    """So a writer held back by graph work waits for its own batch only: with searches coming in,
    integrating change 1 leaves change 2's vectors fresh; without searches (a bulk load) it
    takes the whole fresh set, in large chunks."""
    rng = np.random.default_rng(4)
    for searching in (True, False):
        index = VectorIndex(DIM, "cosine", IndexSpec.parse({"type": "hnsw", "m": 16, "ef_construction": 64}))
        index.publish(np.arange(50), _unit(rng, 50), NONE)  # change 1
        index.publish(np.arange(50, 100), _unit(rng, 50), NONE)  # change 2
        if searching:
            index.searching()
        index.integrate(seq=1, upto=49)
        assert index.applied_seq == 1 and index.fresh == (50 if searching else 0)
        if searching:
            assert set(index.ids().tolist()) == set(range(100))  # change 2 still searchable, exactly
            index.searching()
            index.integrate(seq=2, upto=-1)  # a change without vectors moves none
            assert index.applied_seq == 2 and index.fresh == 50
            index.integrate(seq=3, upto=99)
            assert index.applied_seq == 3 and index.fresh == 0
