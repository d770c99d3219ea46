"""Migration between stores: LMDB -> Qdrant -> LMDB keeps every record, branch, amplitude,
version, expiry and group; an interrupted copy resumes where it stopped."""
import numpy as np
import pytest

import qstore
from qstore.stores.copy import copy_collection

DIM = 6


async def _source(db, rng, clock):
    col = await db.create_collection("src", dim=DIM, metric="cosine", coherence_time=None, store="lmdb")
    X = rng.normal(size=(230, DIM)).astype(np.float32)
    await col.upsert([f"r{i:03d}" for i in range(200)], X[:200], [{"i": i, "t": ["a", i % 3]} for i in range(200)])
    await col.upsert([f"e{i}" for i in range(10)], X[200:210], coherence_time=100)  # pending expiry
    await col.upsert(["gone"], X[210:211], coherence_time=1)
    for j in range(8):
        await col.superpose(f"s{j}", [(X[211 + j], "x", complex(0.6, 0.1)), (X[220 + j], "y", -0.8)],
                            {"s": j}, coherence_time=50 if j % 2 else None)
    await col.upsert(["r001"], X[229:230], [{"i": 1, "again": True}])  # version 2
    await col.entangle("g1", ["r001", "r002", "s1"], 0.4)
    await col.entangle("g2", ["s2", "s3"], 1.0)
    clock.advance(2)  # "gone" has decohered: it is not copied
    return col


async def _everything(col):
    """Every stored record (as get returns it) and every group, by a store-independent path."""
    ids, cursor = [], None
    while True:
        page = await col.scroll(limit=100, cursor=cursor)
        ids.extend(r.id for r in page.records)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    recs = {r.id: r for r in await col.get(sorted(ids))}
    pairs = {(a, b): await col.correlation(a, b) for a in ("r001", "r002", "s1", "s2") for b in ("r002", "s1", "s3")}
    return recs, pairs


def _same(a, b):
    assert sorted(a) == sorted(b)
    for rid, ra in a.items():
        rb = b[rid]
        assert (ra.metadata, ra.expires_at, ra.version) == (rb.metadata, rb.expires_at, rb.version), rid
        assert len(ra.branches) == len(rb.branches)
        for x, y in zip(ra.branches, rb.branches):
            assert x.context == y.context and x.amplitude == y.amplitude
            np.testing.assert_allclose(x.vector, y.vector, rtol=1e-6)


async def test_lmdb_to_qdrant_to_lmdb_keeps_everything(tmp_path, clock, rng):
    db = await qstore.Database.open(str(tmp_path / "db"), clock=clock, sweep_interval=None, qdrant_url=":memory:")
    try:
        src = await _source(db, rng, clock)
        want, want_pairs = await _everything(src)
        assert "gone" not in want and len(want) == 218
        r1 = await copy_collection(db, "src", "mid", store="qdrant", page=64)
        assert r1["copied"] == 218 and r1["store"] == "qdrant"
        mid = await db.collection("mid")
        r2 = await copy_collection(db, "mid", "back", store="lmdb", page=50)
        assert r2["copied"] == 218 and r2["store"] == "lmdb"
        for col in (mid, await db.collection("back")):
            got, pairs = await _everything(col)
            _same(want, got)
            assert pairs == pytest.approx(want_pairs)
            assert (await col.info())["coherence_time"] is None
        clock.advance(200)  # the expiry travelled as an absolute time
        assert await mid.count() == await (await db.collection("back")).count() == await src.count() == 200 + 4
    finally:
        await db.close()


async def test_interrupted_copy_resumes(tmp_path, clock, rng):
    db = await qstore.Database.open(str(tmp_path / "db"), clock=clock, sweep_interval=None, qdrant_url=":memory:")
    try:
        await _source(db, rng, clock)
        pages = []

        def crash_after_two(copied, total):
            pages.append(copied)
            if len(pages) == 2:
                raise KeyboardInterrupt  # the process dies between pages
        with pytest.raises(KeyboardInterrupt):
            await copy_collection(db, "src", "dst", store="qdrant", page=40, progress=crash_after_two)
        assert await (await db.collection("dst")).count() == pages[-1] == 79  # two pages, less "gone"
        seen = []
        done = await copy_collection(db, "src", "dst", store="qdrant", page=40,
                                     progress=lambda c, t: seen.append(c))
        assert done["resumed"] and done["copied"] == 218 and seen[0] == 79 + 40  # it did not start over
        got, _ = await _everything(await db.collection("dst"))
        want, _ = await _everything(await db.collection("src"))
        _same(want, got)
        with pytest.raises(qstore.errors.QStoreError) as e:  # finished: the target now exists
            await copy_collection(db, "src", "dst", store="qdrant")
        assert e.value.code == "collection_exists"
    finally:
        await db.close()


async def test_qstore_copy_command(tmp_path, rng):
    """`qstore copy` moves a collection into the local-mode Qdrant of the data directory, and
    a reopened database finds it there."""
    import json
    import os
    import subprocess
    import sys
    data = tmp_path / "db"
    async with await qstore.Database.open(str(data), sweep_interval=None) as db:
        col = await db.create_collection("src", dim=DIM)
        X = rng.normal(size=(30, DIM)).astype(np.float32)
        await col.upsert([f"r{i}" for i in range(30)], X, [{"i": i} for i in range(30)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", "from qstore_server.command import main; main()", "copy", "src",
                          "dst", "--data-dir", str(data), "--store", "qdrant", "--filter", '{"i": {"$lt": 10}}'],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["copied"] == 10
    async with await qstore.Database.open(str(data), sweep_interval=None) as db:
        dst = await db.collection("dst")
        assert (await dst.info())["store"] == "qdrant" and await dst.count() == 10
        np.testing.assert_allclose((await dst.get(["r3"]))[0].vector, X[3], rtol=1e-6)
