"""A disk that fills up mid-batch, a map that cannot grow, and a server on a full disk: a typed
``insufficient_storage`` error (HTTP 507), nothing changed, reads go on, and writes succeed
again by themselves once space returns."""
from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import qstore
import qstore_client
from tests.servers import ServerProcess

DIM = 64
BATCH = 200


@contextlib.contextmanager
def tiny_fs(root: Path, mib: int) -> Iterator[Path]:
    """A tmpfs of ``mib`` MiB mounted under ``root`` (skips where mounting is not permitted)."""
    mnt = root / f"tmpfs-{uuid.uuid4().hex[:8]}"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(mnt)], check=False,
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mount is not permitted here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def batch(b: int) -> tuple[list[str], np.ndarray]:
    return [f"b{b}-{i}" for i in range(BATCH)], np.random.default_rng(b).normal(size=(BATCH, DIM)).astype(np.float32)


def filler(mnt: Path, mib: int) -> Path:
    """Space to give back later."""
    path = mnt / "filler"
    path.write_bytes(os.urandom(mib << 20))
    return path


async def test_full_disk_refuses_writes_then_recovers(tmp_path):
    with tiny_fs(tmp_path, 8) as mnt:
        spare = filler(mnt, 3)
        path = str(mnt / "db")
        db = await qstore.Database.open(path, sweep_interval=None)
        col = await db.create_collection("v", dim=DIM, index={"type": "flat"})
        acked, b = [], 0
        with pytest.raises(qstore.InsufficientStorage) as refused:
            while b < 1000:
                await col.upsert(*batch(b))
                acked.append(b)
                b += 1
        assert refused.value.code == "insufficient_storage" and refused.value.status == 507
        assert acked, "the disk was full before the first write"
        # nothing of the refused batch was written; reads go on
        assert await col.count() == len(acked) * BATCH
        assert (await col.get(batch(b)[0][:1])) == [None]
        ids, X = batch(acked[-1])
        assert (await col.query(X[7], top_k=1))[0].id == ids[7]
        with pytest.raises(qstore.InsufficientStorage):  # still full: refused again, still typed
            await col.upsert(*batch(b))
        spare.unlink()
        await col.upsert(*batch(b))  # no restart, no reopen: space is back
        acked.append(b)
        await db.close()
        async with await qstore.Database.open(path, sweep_interval=None) as db:
            col = await db.collection("v")
            assert await col.count() == len(acked) * BATCH
            for b in acked:
                ids, X = batch(b)
                assert (await col.get(ids[-1:]))[0] is not None
            report = await db.check()
            assert report.ok and not report.problems, report
            b = max(acked) + 1
            with pytest.raises(qstore.InsufficientStorage):  # full again, then closed while full
                while True:
                    await col.upsert(*batch(b))
                    acked.append(b)
                    b += 1
        async with await qstore.Database.open(path, sweep_interval=None) as db:  # opens on a full disk
            col = await db.collection("v")
            assert await col.count() == len(acked) * BATCH


MAP_CHILD = """
import asyncio, os, resource, sys
import qstore
from qstore.storage import Storage

async def main(path):
    st = Storage(path, map_size=1 << 20)
    value = os.urandom(256 << 10)
    put = lambda key: st.write(lambda ctx: ctx.put("records", key, value))
    await put(b"first")
    vm = int([l.split()[1] for l in open("/proc/self/status") if l.startswith("VmSize")][0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + (48 << 20), resource.RLIM_INFINITY))
    n = 0
    try:
        for n in range(1, 1000):  # the map doubles from 1 MiB until it may not
            await put(b"k%d" % n)
    except qstore.InsufficientStorage as exc:
        print("REFUSED", n, exc.code, flush=True)
    get = lambda key: st.read_sync(lambda txn: txn.get(key, db=st.tables["records"]))
    print("READS", get(b"first") == value and get(b"k%d" % (n - 1)) == value and get(b"k%d" % n) is None,
          flush=True)
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    await put(b"k%d" % n)
    print("RESUMED", get(b"k%d" % n) == value, flush=True)
    st.close()

asyncio.run(main(sys.argv[1]))
"""


def test_map_that_cannot_grow_gives_the_same_typed_error(tmp_path):
    """Growing the map needs address space; under an address-space limit growth fails. LMDB
    would be left without a map (the next read crashes the process), so the growth is refused
    up front with insufficient_storage, and writes resume once the limit is lifted."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", MAP_CHILD, str(tmp_path / "db")], capture_output=True, check=False,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.split("\n")
    assert any(line.startswith("REFUSED") and "insufficient_storage" in line for line in lines), done.stdout
    assert "READS True" in lines and "RESUMED True" in lines, done.stdout + done.stderr


async def test_server_on_a_full_disk_answers_507_and_recovers(tmp_path):
    with tiny_fs(tmp_path, 16) as mnt:
        spare = filler(mnt, 4)
        srv = ServerProcess(mnt / "data")
        try:
            async with qstore_client.AsyncClient(srv.url) as client:
                col = await client.create_collection("v", dim=DIM, index={"type": "flat"})
                b = 0
                with pytest.raises(qstore_client.InsufficientStorage) as refused:
                    while b < 2000:
                        await col.upsert(*batch(b))
                        b += 1
                assert refused.value.code == "insufficient_storage"
                assert b > 0
                ids, X = batch(b - 1)
                assert (await col.query(X[5], top_k=1))[0].id == ids[5]  # reads go on
                assert await col.count() == b * BATCH
                spare.unlink()
                await col.upsert(*batch(b))
                assert await col.count() == (b + 1) * BATCH
            status = raw_status(srv.url)
            assert status == 200
        finally:
            assert srv.stop() == 0, srv.log.read_text()


def raw_status(url: str) -> int:
    import urllib.request
    with urllib.request.urlopen(url + "/v1/health", timeout=5) as resp:
        return resp.status


@pytest.mark.slow
async def test_full_disk_under_concurrent_writers_many_cycles(tmp_path):
    """Eight writers at once (their upserts share group-commit batches), HNSW, five fill/free
    cycles: every acknowledged batch is there, every refused one is wholly absent."""
    with tiny_fs(tmp_path, 24) as mnt:
        path = str(mnt / "db")
        db = await qstore.Database.open(path, sweep_interval=None, snapshot_every=2000)
        col = await db.create_collection("v", dim=DIM, index={"type": "hnsw", "m": 16})
        acked, refused, b = set(), set(), 0
        for cycle in range(5):
            try:
                spare = filler(mnt, 3)
            except OSError:  # already full: LMDB keeps its freed pages, snapshots took the rest
                spare = mnt / "filler"  # what was written of it is the spare
            while True:
                todo = list(range(b, b + 8))
                b += 8
                results = await asyncio.gather(*[col.upsert(*batch(n)) for n in todo], return_exceptions=True)
                for n, r in zip(todo, results):
                    if isinstance(r, qstore.InsufficientStorage):
                        refused.add(n)
                    else:
                        assert r == BATCH, r
                        acked.add(n)
                if refused and len(refused) >= 8 * (cycle + 1):
                    break
            assert await col.count() == len(acked) * BATCH
            spare.unlink(missing_ok=True)
            # make room for the next cycle: delete some acknowledged batches. A background
            # snapshot may take the freed space first: a refused delete changes nothing, and
            # its batch stays acknowledged (and is checked as such below).
            for n in sorted(acked)[: len(acked) // 3]:
                try:
                    await col.delete(batch(n)[0])
                except qstore.InsufficientStorage:
                    continue
                acked.discard(n)
        await db.close()
        async with await qstore.Database.open(path, sweep_interval=None) as db:
            col = await db.collection("v")
            assert await col.count() == len(acked) * BATCH
            for n in acked:
                assert (await col.get(batch(n)[0][:1]))[0] is not None
            for n in refused:
                assert (await col.get(batch(n)[0][:1]))[0] is None
            assert (await db.check()).ok
