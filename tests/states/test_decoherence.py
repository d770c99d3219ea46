import numpy as np
import pytest

import qstore
from qstore import InvalidArgument


async def test_expiry_is_invisible_at_once_then_swept(db, clock, rng):
    col = await db.create_collection("d", dim=4, index={"type": "hnsw", "m": 8})
    X = rng.normal(size=(3, 4)).astype(np.float32)
    await col.upsert(["short"], X[:1], coherence_time=10)
    await col.upsert(["long", "forever"], X[1:], coherence_time=None)
    await col.upsert(["long"], X[1:2], coherence_time=100)
    rec = (await col.get(["short"]))[0]
    assert rec.expires_at == pytest.approx(clock() + 10)
    clock.advance(10.5)
    assert (await col.get(["short"]))[0] is None
    assert await col.count() == 2
    assert "short" not in {h.id for h in await col.query(X[0], top_k=3)}
    assert "short" not in {r.id for r in (await col.scroll()).records}
    assert col.index.size == 3  # not swept yet, only hidden
    assert await db.sweep() == 1
    assert await col.count() == 2 and col.index.size == 2  # count() waits for the index work
    clock.advance(100)
    assert [h.id for h in await col.query(X[1], top_k=3)] == ["forever"]
    assert await db.sweep() == 1


async def test_collection_default_and_restart(tmp_path, clock, rng):
    path = str(tmp_path / "r")
    X = rng.normal(size=(4, 4)).astype(np.float32)
    async with await qstore.Database.open(path, clock=clock, sweep_interval=None) as db:
        col = await db.create_collection("ttl", dim=4, coherence_time=60)
        await col.upsert(["a", "b"], X[:2])
        await col.upsert(["c"], X[2:3], coherence_time=600)
    clock.advance(61)
    async with await qstore.Database.open(path, clock=clock, sweep_interval=None) as db:
        col = await db.collection("ttl")
        assert await col.count() == 1
        assert [r.id if r else None for r in await col.get(["a", "b", "c"])] == [None, None, "c"]
        assert await db.sweep() == 2
    async with await qstore.Database.open(path, clock=clock, sweep_interval=None) as db:
        col = await db.collection("ttl")
        assert col.index.size == 1 and await col.count() == 1


async def test_background_sweeper_runs(tmp_path, rng):
    import asyncio

    from tests.conftest import FakeClock
    clock = FakeClock()
    async with await qstore.Database.open(str(tmp_path / "bg"), clock=clock, sweep_interval=0.02) as db:
        col = await db.create_collection("bg", dim=4)
        await col.upsert(["x"], rng.normal(size=(1, 4)), coherence_time=1)
        clock.advance(2)
        for _ in range(200):
            if col.index.size == 0:
                break
            await asyncio.sleep(0.02)
        assert col.index.size == 0


async def test_on_decohere_collapse_keeps_the_most_probable_branch(db, clock):
    col = await db.create_collection("c", dim=2, metric="cosine", index={"type": "flat"}, on_decohere="collapse")
    e0, e1 = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    await col.superpose("s", [(e0, "weak", 0.6), (e1, "strong", 0.8)], coherence_time=5)
    await col.upsert(["p"], e0[None, :], coherence_time=5)
    clock.advance(6)
    rec = (await col.get(["s"]))[0]  # collapsed view at once, before the sweep
    assert len(rec.branches) == 1 and rec.branches[0].context == "strong" and rec.expires_at is None
    assert (await col.get(["p"]))[0] is None  # plain records have nothing to collapse to
    hits = await col.query(e0, top_k=5)
    assert [h.id for h in hits] == ["s"] and hits[0].score == pytest.approx(0.0, abs=1e-6)
    assert await db.sweep() == 2
    rec = (await col.get(["s"]))[0]
    assert len(rec.branches) == 1 and rec.expires_at is None and col.index.size == 1
    clock.advance(1000)
    assert (await col.get(["s"]))[0] is not None


async def test_negative_coherence_time_changes_nothing(db):
    col = await db.create_collection("n", dim=2)
    await col.upsert(["a"], np.ones((1, 2)))
    for bad in (-1, 0, float("nan"), "10"):
        with pytest.raises(InvalidArgument) as err:
            await col.upsert(["a"], np.ones((1, 2)) * 2, coherence_time=bad)
        assert err.value.code == "invalid_coherence_time"
    rec = (await col.get(["a"]))[0]
    assert rec.expires_at is None and rec.version == 1


async def test_every_operation_sees_expired_records_as_reads_do(db, clock, rng):
    """Delete mode: an expired, unswept record is gone for delete's count, correlation,
    update, entangle and correlated collapse alike."""
    from qstore import NotFound
    col = await db.create_collection("view", dim=2, index={"type": "flat"})
    e0, e1 = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    await col.superpose("m", [(e0, "x", 1), (e1, "y", 1)])
    await col.superpose("p", [(e0, "x", 1), (e1, "y", 1)], coherence_time=5)
    await col.upsert(["q", "gone"], np.stack([e0, e1]), coherence_time=5)
    await col.upsert(["keep"], e0[None, :])
    await col.entangle("g", ["m", "p", "q"], strength=1.0)
    clock.advance(6)
    for call in (lambda: col.correlation("m", "p"), lambda: col.update("q", e1),
                 lambda: col.entangle("h", ["m", "q"], 0.5)):
        with pytest.raises(NotFound):
            await call()
    assert await col.correlation("m", "keep") == 0.0
    await col.update("m", np.array([1, 1], np.float32))  # the expired partners do not move
    m = await col.measure("m", collapse=True, seed=0)
    assert m.context in ("x", "y")
    assert await col.delete(["gone", "keep", "missing"]) == 1  # "gone" had expired: not counted
    assert await db.sweep() == 2  # p and q were never rewritten: still due, swept as they were
    assert await col.count() == 1


async def test_collapse_mode_view_is_what_writes_see(db, clock):
    """A record that get shows as collapsed can be updated and entangled, and a correlated
    collapse does not rewrite it behind that view."""
    col = await db.create_collection("cview", dim=2, metric="l2", index={"type": "flat"}, on_decohere="collapse")
    e0, e1 = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    await col.superpose("a", [(e0, "x", 1), (e1, "y", 1)])
    await col.superpose("b", [(e0, "x", 0.6), (e1, "y", 0.8)], coherence_time=5)  # view: "y"
    await col.superpose("c", [(e0, "x", 0.6), (e1, "y", 0.8)], coherence_time=5)
    await col.entangle("g", ["a", "b"], strength=1.0)
    clock.advance(6)
    m = await col.measure("a", context="x", collapse=True, seed=0)  # ρ = 1, but b shows "y" alone
    assert m.context == "x"
    rec = (await col.get(["b"]))[0]
    assert rec is not None and [br.context for br in rec.branches] == ["y"]
    await col.entangle("h", ["b", "c"], strength=0.5)
    assert await col.correlation("b", "c") == pytest.approx(0.5)
    await col.update("c", np.array([0, 3], np.float32))
    rec = (await col.get(["c"]))[0]
    assert [br.context for br in rec.branches] == ["y"] and rec.expires_at is None
    np.testing.assert_allclose(rec.vector, [0, 3])
    np.testing.assert_allclose((await col.get(["b"]))[0].vector, [0, 1 + 0.5 * 2], atol=1e-6)
    assert await col.delete(["b"]) == 1
