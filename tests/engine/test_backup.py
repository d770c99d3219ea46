"""Nothing lost on the way out and back: export -> import, and backup (taken while a writer
runs) -> restore, both give back the original collection field by field. ``check`` finds
planted inconsistencies and repairs them."""
from __future__ import annotations

import asyncio
import io
import json
import os

import numpy as np
import pytest

import qstore
from qstore import cli
from qstore.export import export_jsonl, groups, import_jsonl
from qstore.storage import codec

DIM = 16


async def populate(db: qstore.Database) -> qstore.Collection:
    """Plain, superposed (contexts, complex amplitudes), expiring and entangled records."""
    rng = np.random.default_rng(3)
    col = await db.create_collection("docs", dim=DIM, metric="cosine", index={"type": "hnsw", "m": 16},
                                     on_decohere="collapse")
    X = rng.normal(size=(300, DIM)).astype(np.float32)
    await col.upsert([f"p{i}" for i in range(300)], X, [{"i": i, "tag": ["a", "b"][i % 2], "x": i / 7}
                                                         for i in range(300)])
    await col.upsert([f"e{i}" for i in range(20)], X[:20] + 1, [{"exp": True}] * 20, coherence_time=90.5)
    for i in range(25):
        amps = [complex(rng.normal(), rng.normal()) for _ in range(3)]
        await col.superpose(f"s{i}", [(rng.normal(size=DIM), ctx, a) for ctx, a in zip(("x", "y", None), amps)],
                            metadata={"s": i}, coherence_time=None if i % 3 else 40.0 + i)
    await col.entangle("g1", ["p0", "p1", "p2"], strength=0.7)
    await col.entangle("g2", ["s0", "p5", "e3"], strength=0.25)
    await col.update("p0", rng.normal(size=DIM))  # moves its partners; versions go up
    return col


async def dump(col: qstore.Collection, versions: bool = True) -> dict:
    """Every field of every record, the groups, and the collection's settings."""
    now = col._now()
    recs = {}
    cursor = None
    while True:
        page = await col.scroll(limit=1000, cursor=cursor)
        for r in page.records:
            recs[r.id] = (r.vector.tobytes(), r.metadata,
                          [(b.vector.tobytes(), b.context, round(b.amplitude.real, 12), round(b.amplitude.imag, 12))
                           for b in r.branches],
                          None if r.expires_at is None else r.expires_at - now,
                          r.version if versions else None)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    settings = {k: v for k, v in col.config.items() if k not in ("cid", "regions")}
    return {"settings": settings, "records": recs, "groups": await groups(col)}


async def test_export_import_round_trips_everything(tmp_path, clock):
    async with await qstore.Database.open(str(tmp_path / "a"), clock=clock, sweep_interval=None) as db:
        col = await populate(db)
        clock.advance(10)  # remaining coherence, not the absolute expiry, travels
        original = await dump(col, versions=False)
        buf = io.StringIO()
        assert await export_jsonl(col, buf) == len(original["records"])
    clock.advance(1000)
    async with await qstore.Database.open(str(tmp_path / "b"), clock=clock, sweep_interval=None) as db:
        col = await import_jsonl(db, io.StringIO(buf.getvalue()))
        assert await dump(col, versions=False) == original
        assert sum(len(r[2]) > 1 for r in original["records"].values()) == 25
        assert sum(r[3] is not None for r in original["records"].values()) == 29
        assert await col.correlation("p1", "p2") == 0.7 and await col.correlation("s0", "e3") == 0.25
        report = await db.check()
        assert report.ok and not report.problems


async def test_backup_under_a_writer_restores_everything(tmp_path, clock):
    path, bk = str(tmp_path / "live"), str(tmp_path / "backup")
    db = await qstore.Database.open(path, clock=clock, sweep_interval=None, snapshot_every=500)
    col = await populate(db)
    original = await dump(col)
    busy = await db.create_collection("busy", dim=DIM, index={"type": "flat"})
    acked: list[int] = []
    stop = asyncio.Event()

    async def writer() -> None:
        b = 0
        while not stop.is_set():
            X = np.random.default_rng(b).normal(size=(100, DIM)).astype(np.float32)
            await busy.upsert([f"w{b}-{i}" for i in range(100)], X)
            acked.append(b)
            b += 1

    task = asyncio.create_task(writer())
    while len(acked) < 5:
        await asyncio.sleep(0.01)
    before = len(acked)
    manifest = await db.backup(bk)
    during = len(acked)
    stop.set()
    await task
    assert during > before or len(acked) > before  # the writer was not stopped by the backup
    await db.close()
    assert set(manifest["files"]) == {"lmdb/data.mdb", "indexes/1.faiss", "indexes/2.faiss"}

    restored = await qstore.Database.restore(bk, str(tmp_path / "restored"), clock=clock, sweep_interval=None)
    async with restored:
        assert await dump(await restored.collection("docs")) == original
        busy = await restored.collection("busy")
        n = await busy.count()
        assert n % 100 == 0 and before * 100 <= n <= len(acked) * 100  # whole batches, none unacknowledged
        assert all(c.snapshot_problem is None for c in restored._collections.values())
        report = await restored.check()
        assert report.ok and not report.problems


async def test_damaged_or_clashing_backups_are_refused(tmp_path, clock):
    async with await qstore.Database.open(str(tmp_path / "db"), clock=clock, sweep_interval=None) as db:
        await populate(db)
        await db.backup(str(tmp_path / "bk"))
        with pytest.raises(qstore.AlreadyExists):
            await db.backup(str(tmp_path / "bk"))
    data = tmp_path / "bk" / "lmdb" / "data.mdb"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 1
    data.write_bytes(raw)
    with pytest.raises(qstore.InvalidArgument) as bad:
        await qstore.Database.restore(str(tmp_path / "bk"), str(tmp_path / "r"))
    assert bad.value.code == "invalid_backup" and not (tmp_path / "r").exists()


async def test_check_finds_and_repairs_planted_damage(tmp_path, clock):
    async with await qstore.Database.open(str(tmp_path / "db"), clock=clock, sweep_interval=None) as db:
        col = await populate(db)
        await col.build_regions(4)
        assert (await db.check()).problems == []
        iid = int(col._entries["p7"].iids[0])

        def plant(ctx) -> None:
            ctx.delete("rev", codec.iid_key(col.cid, iid))                     # derived table row lost
            ctx.put("expiry", codec.expiry_key(5.0, col.cid, "ghost"), b"")    # expiry of nothing
            g = codec.u32(col.cid) + b"G" + b"g1"
            ctx.put("groups", g, codec.pack({"members": ["p0", "p1", "gone"], "strength": 0.7}))
            ctx.put("records", codec.record_key(col.cid + 50, "orphan"), b"x")  # a dropped collection's row
        await db._storage.write(plant)
        col.index.apply(np.empty(0, np.int64), np.empty((0, DIM), np.float32), np.array([iid]), 0)  # index drift
        col.regions = {**col.regions, "radii": -col.regions["radii"]}

        report = await db.check()
        kinds = {p.kind for p in report.problems}
        assert kinds == {"rev", "expiry", "group", "index", "orphan", "region"}, [str(p) for p in report.problems]
        assert not report.ok
        repaired = await db.check(repair=True)
        assert repaired.ok and {p.kind for p in repaired.problems} == kinds
        assert (await db.check()).problems == []
        assert (await col.query((await col.get(["p7"]))[0].vector, top_k=1))[0].id == "p7"
        assert await col.correlation("p0", "p1") == 0.7


def test_command_line_check_backup_restore_export_import(tmp_path, capsys):
    src = str(tmp_path / "src")

    async def make() -> dict:
        async with await qstore.Database.open(src, sweep_interval=None) as db:
            return await dump(await populate(db), versions=False)

    original = asyncio.run(make())
    assert cli.main(["check", src]) == 0
    capsys.readouterr()
    assert cli.main(["check", src, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert cli.main(["backup", src, str(tmp_path / "bk")]) == 0
    assert cli.main(["backup", src, str(tmp_path / "bk")]) == 2  # exists: a message, not a traceback
    assert cli.main(["restore", str(tmp_path / "bk"), str(tmp_path / "restored")]) == 0
    out = str(tmp_path / "docs.jsonl")
    assert cli.main(["export", out, "--data-dir", str(tmp_path / "restored"), "--collection", "docs"]) == 0
    assert cli.main(["import", out, "--data-dir", str(tmp_path / "imported")]) == 0

    async def reread() -> dict:
        async with await qstore.Database.open(str(tmp_path / "imported"), sweep_interval=None) as db:
            return await dump(await db.collection("docs"), versions=False)

    again = asyncio.run(reread())
    assert again["records"].keys() == original["records"].keys() and again["groups"] == original["groups"]
    for rid, rec in original["records"].items():  # real clock: remaining coherence shrank a little
        assert again["records"][rid][:3] == rec[:3]
        assert (rec[3] is None) == (again["records"][rid][3] is None)
    with open(os.path.join(str(tmp_path / "restored"), "indexes", "1.faiss"), "r+b") as f:
        f.truncate(100)
    assert cli.main(["check", str(tmp_path / "restored")]) == 0  # open already rebuilt and says so
    assert "repaired on open" in capsys.readouterr().out

