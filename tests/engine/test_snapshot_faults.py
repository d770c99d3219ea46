"""Damaged snapshot files are discarded, logged and rebuilt from LMDB; a failed open releases
everything, so the next open in the same process works."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
from pathlib import Path

import lmdb
import numpy as np
import pytest

import qstore
from qstore.storage import codec

N, DIM = 600, 16


async def make_db(path: str, collections: tuple[str, ...] = ("a",)) -> dict[str, np.ndarray]:
    """Collections with snapshots on disk and some changes after them (replayed on open)."""
    data = {}
    async with await qstore.Database.open(path, sweep_interval=None) as db:
        for k, name in enumerate(collections):
            col = await db.create_collection(name, dim=DIM, index={"type": "hnsw", "m": 16})
            X = np.random.default_rng(k).normal(size=(N, DIM)).astype(np.float32)
            await col.upsert([f"{name}{i}" for i in range(N)], X)
            data[name] = X
    return data


async def assert_serves(path: str, data: dict[str, np.ndarray]) -> list[str]:
    """Every record is found as its own nearest neighbour, index and LMDB agree, check is clean."""
    async with await qstore.Database.open(path, sweep_interval=None) as db:
        problems = [c.snapshot_problem for c in db._collections.values() if c.snapshot_problem]
        for name, X in data.items():
            col = await db.collection(name)
            assert col.index.size == await col.count() == len(X)
            for i in (0, len(X) // 2, len(X) - 1):
                assert (await col.query(X[i], top_k=1))[0].id == f"{name}{i}"
        report = await db.check()
        assert report.ok and not report.problems, report
    return problems


def snapshot_file(path: str, cid: int = 1) -> str:
    return os.path.join(path, "indexes", f"{cid}.faiss")


def damage(file: str, how: str) -> None:
    raw = bytearray(Path(file).read_bytes())
    if how == "truncated":
        raw = raw[: len(raw) // 2]
    elif how == "bit-flipped":
        raw[len(raw) - 100] ^= 0x10  # inside the FAISS payload: it would still parse
    elif how == "header-flipped":
        raw[15] ^= 0x01
    elif how == "empty":
        raw = bytearray()
    Path(file).write_bytes(raw)


@pytest.mark.parametrize("how", ["truncated", "bit-flipped", "header-flipped", "empty"])
async def test_damaged_snapshot_is_rebuilt_from_lmdb(tmp_path, caplog, how):
    path = str(tmp_path / "db")
    data = await make_db(path)
    damage(snapshot_file(path), how)
    with caplog.at_level(logging.WARNING, logger="qstore.collection"):
        problems = await assert_serves(path, data)
    assert len(problems) == 1 and "discarded" in problems[0]
    assert any("discarded" in r.getMessage() for r in caplog.records)
    assert await assert_serves(path, data) == []  # the rebuilt index was snapshotted again


async def test_bit_flip_that_faiss_accepts_is_caught(tmp_path):
    """A flat index's payload is raw floats: a flipped bit parses and would be served silently."""
    path = str(tmp_path / "db")
    async with await qstore.Database.open(path, sweep_interval=None) as db:
        col = await db.create_collection("a", dim=DIM, index={"type": "flat"})
        X = np.random.default_rng(0).normal(size=(N, DIM)).astype(np.float32)
        await col.upsert([f"a{i}" for i in range(N)], X)
        first = col.index.prepare(X[:1]).tobytes()  # as stored: unit length under cosine
    file = snapshot_file(path)
    raw = bytearray(Path(file).read_bytes())
    at = raw.find(first)
    assert at > 0
    raw[at + 3] ^= 0x40  # the sign-and-exponent byte of the first vector's first component
    Path(file).write_bytes(raw)
    assert await assert_serves(path, {"a": X}) != []


async def test_swapped_snapshots_are_refused(tmp_path):
    path = str(tmp_path / "db")
    data = await make_db(path, ("a", "b"))
    a, b = snapshot_file(path, 1), snapshot_file(path, 2)
    os.rename(a, a + ".x")
    os.rename(b, a)
    os.rename(a + ".x", b)
    problems = await assert_serves(path, data)
    assert len(problems) == 2 and all("belongs to collection id" in p for p in problems)


async def test_missing_snapshot_and_stray_files(tmp_path):
    path = str(tmp_path / "db")
    data = await make_db(path)
    os.remove(snapshot_file(path))
    Path(snapshot_file(path) + ".tmp").write_bytes(b"half a snapshot")  # a write cut by a crash
    Path(snapshot_file(path, 99)).write_bytes(b"a dropped collection's")
    assert await assert_serves(path, data) == []
    assert os.listdir(os.path.join(path, "indexes")) == ["1.faiss"]


async def test_snapshot_newer_than_the_database_is_refused(tmp_path):
    """An index directory kept while LMDB went back to an older copy."""
    path, old = str(tmp_path / "db"), str(tmp_path / "old")
    data = await make_db(path)
    shutil.copytree(os.path.join(path, "lmdb"), os.path.join(old, "lmdb"))
    async with await qstore.Database.open(path, sweep_interval=None) as db:
        col = await db.collection("a")
        await col.delete([f"a{i}" for i in range(100)])
    shutil.copytree(os.path.join(path, "indexes"), os.path.join(old, "indexes"))
    problems = await assert_serves(old, data)
    assert len(problems) == 1 and "newer than the database" in problems[0]


async def test_snapshot_of_an_older_format_is_refused(tmp_path):
    path = str(tmp_path / "db")
    data = await make_db(path)
    raw = Path(snapshot_file(path)).read_bytes()
    Path(snapshot_file(path)).write_bytes(b"QSTORE-IDX1\n" + raw[12:])
    problems = await assert_serves(path, data)
    assert len(problems) == 1


def qstore_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("qstore")}


async def test_failed_open_releases_everything(tmp_path):
    """A collection config the engine refuses makes open fail; the LMDB environment and threads
    are released, so the directory can be repaired and opened again in the same process."""
    path = str(tmp_path / "db")
    data = await make_db(path)
    before = qstore_threads()
    env = lmdb.open(os.path.join(path, "lmdb"), max_dbs=16)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        good = txn.get(b"col:a", db=meta)
        txn.put(b"col:a", codec.pack({**codec.unpack(good), "index": {"type": "bogus"}}), db=meta)
    env.close()
    for _ in range(2):
        with pytest.raises(qstore.InvalidArgument):
            await qstore.Database.open(path, sweep_interval=None)
    assert qstore_threads() <= before
    env = lmdb.open(os.path.join(path, "lmdb"), max_dbs=16)  # fails if the failed open kept it
    with env.begin(write=True) as txn:
        txn.put(b"col:a", good, db=env.open_db(b"meta", txn=txn))
    env.close()
    await assert_serves(path, data)


async def test_stale_snapshot_past_the_pruned_history_is_rebuilt(tmp_path):
    """A sound but old snapshot (an index directory put back from earlier) whose later changes were
    pruned: same vector count, different vectors. Replay cannot bring it up to date; the id-for-id
    comparison with LMDB catches it, where a count comparison would not."""
    path = str(tmp_path / "db")
    data = await make_db(path)
    shutil.copy(snapshot_file(path), str(tmp_path / "old.faiss"))
    X = data["a"].copy()
    async with await qstore.Database.open(path, sweep_interval=None) as db:
        col = await db.collection("a")
        X[:100] = np.random.default_rng(9).normal(size=(100, DIM)).astype(np.float32)
        await col.upsert([f"a{i}" for i in range(100)], X[:100])  # same ids and count, new vectors
    shutil.copy(str(tmp_path / "old.faiss"), snapshot_file(path))
    problems = await assert_serves(path, {"a": X})
    assert len(problems) == 1 and "inconsistent" in problems[0]


def test_a_streamed_snapshot_is_the_one_step_layout_and_a_failed_one_leaves_nothing(tmp_path):
    """SnapshotWriter streams the index into the file and fills in the header afterwards; the
    bytes must be the documented layout around FAISS's own serialization, and a write that
    fails part way leaves no temp file behind."""
    import faiss

    from qstore.index import snapshot

    index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(DIM, 16))
    index.add_with_ids(np.random.default_rng(0).normal(size=(300, DIM)).astype(np.float32), np.arange(300))
    tombs = np.array([3, 7], np.int64)
    path = str(tmp_path / "indexes" / "1.faiss")
    writer = snapshot.SnapshotWriter(path)
    writer.body(tombs, index)
    writer.commit(1, 42, 298)
    data = faiss.serialize_index(index).tobytes()
    head = snapshot._HEAD.pack(1, 42, 298, 2, len(data))
    tomb_bytes = tombs.astype(">i8").tobytes()
    want = snapshot.MAGIC + head + snapshot._digest(head, tomb_bytes, data) + tomb_bytes + data
    assert Path(path).read_bytes() == want
    assert os.listdir(tmp_path / "indexes") == ["1.faiss"]

    with pytest.raises(RuntimeError):  # FAISS cannot serialize shards: the stream fails after our prefix
        snapshot.SnapshotWriter(str(tmp_path / "indexes" / "2.faiss")).body(tombs, faiss.IndexShards(DIM))
    assert os.listdir(tmp_path / "indexes") == ["1.faiss"]


async def test_a_snapshot_holding_the_vectors_of_later_changes_replays_cleanly(tmp_path):
    """The graph builder graphs whatever is fresh, so a snapshot taken at change N can hold
    vectors of change N+1 (a SIGKILL test met it): replaying N+1 on open must skip them, also
    when it skips them all."""
    path = str(tmp_path / "db")
    rng = np.random.default_rng(5)
    X, Y = rng.normal(size=(50, DIM)).astype(np.float32), rng.normal(size=(20, DIM)).astype(np.float32)
    async with await qstore.Database.open(path, sweep_interval=None) as db:
        col = await db.create_collection("a", dim=DIM, index={"type": "hnsw", "m": 16})
        await col.upsert([f"x{i}" for i in range(50)], X)
        await db._storage.settle()
        first = col.index.applied_seq
        await col.upsert([f"y{i}" for i in range(20)], Y)
        await db._storage.settle()
        assert col.index.applied_seq > first and col.index.fresh == 0
        col.index.applied_seq = first  # the state a crash can leave: the graph holds "y", the snapshot says "x"
        await asyncio.get_running_loop().run_in_executor(None, col.snapshot)
        assert col.snapshot_seq == first
        col._unsnapshotted = 0  # so close() keeps that snapshot
    async with await qstore.Database.open(path, sweep_interval=None) as db:
        col = await db.collection("a")
        assert not col.snapshot_problem and col.snapshot_seq == first
        assert col.index.size == await col.count() == 70
        for name, v in (("x3", X[3]), ("y7", Y[7])):
            assert (await col.query(v, top_k=1))[0].id == name
        assert (await db.check()).ok
