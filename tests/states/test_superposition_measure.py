import numpy as np
import pytest
from scipy.stats import chisquare

from qstore import InvalidArgument, NotFound


def v(*xs):
    return np.array(xs, dtype=np.float32)


async def test_amplitudes_are_normalised_and_every_branch_indexed(db):
    col = await db.create_collection("s", dim=3, metric="cosine", index={"type": "flat"})
    await col.superpose("r", [(v(1, 0, 0), "a", 3), (v(0, 1, 0), "b", 4j), (v(0, 0, 1), None, np.float32(1e-3))])
    rec = (await col.get(["r"]))[0]
    amps = [b.amplitude for b in rec.branches]
    np.testing.assert_allclose(amps, np.array([3, 4j, 1e-3]) / np.sqrt(25 + 1e-6), rtol=1e-6)
    np.testing.assert_allclose(sum(abs(a) ** 2 for a in amps), 1.0)
    np.testing.assert_allclose(rec.vector, [0, 1, 0])  # the most probable branch
    assert col.index.size == 3
    assert [h.id for h in await col.query(v(1, 0, 0), context="a")] == ["r"]
    assert [h.id for h in await col.query(v(0, 1, 0), context="b")] == ["r"]


async def test_context_query_uses_that_branch_and_skips_records_without_it(db):
    col = await db.create_collection("c", dim=2, metric="cosine", index={"type": "hnsw", "m": 8})
    await col.superpose("both", [(v(1, 0), "news", 1), (v(0, 1), "sport", 1)])
    await col.superpose("sport_only", [(v(0.6, 0.8), "sport", 1), (v(1, 0), "other", 1)])
    await col.upsert(["plain"], v(1, 0)[None, :])
    hits = await col.query(v(1, 0), top_k=10, context="sport")
    assert [h.id for h in hits] == ["sport_only", "both"]
    np.testing.assert_allclose([h.score for h in hits], [0.6, 0.0], atol=1e-6)
    hits = await col.query(v(1, 0), top_k=10, context="news")
    assert [h.id for h in hits] == ["both"]
    np.testing.assert_allclose(hits[0].score, 1.0, atol=1e-6)
    assert await col.query(v(1, 0), context="nobody") == []


async def test_born_weighted_ranking_differs_from_max_and_first_branch(db):
    """Hand-built: q = e₀. Born scores C 0.81 > B 0.6 > A 0.3; max-branch would give A, C, B;
    first-branch would give A, B, C."""
    col = await db.create_collection("born", dim=2, metric="cosine", index={"type": "flat"})
    c9 = np.array([0.9, np.sqrt(1 - 0.81)], dtype=np.float32)
    await col.superpose("A", [(v(1, 0), "x", np.sqrt(0.3)), (v(0, 1), "y", np.sqrt(0.7))])
    await col.upsert(["B"], np.array([[0.6, 0.8]], dtype=np.float32))
    await col.superpose("C", [(v(0, 1), "x", np.sqrt(0.1)), (c9, "y", np.sqrt(0.9))])
    hits = await col.query(v(1, 0), top_k=3)
    assert [h.id for h in hits] == ["C", "B", "A"]
    np.testing.assert_allclose([h.score for h in hits], [0.81, 0.6, 0.3], atol=1e-5)


async def test_measure_follows_born_rule_chi_squared(fastdb):
    col = await fastdb.create_collection("m", dim=2, index={"type": "flat"})
    amps = [0.5, 0.5j, -np.sqrt(0.3), np.sqrt(0.2)]
    ctxs = ["a", "b", "a", "c"]
    vecs = [v(1, 0), v(0, 1), v(1, 1), v(1, -1)]
    await col.superpose("r", list(zip(vecs, ctxs, amps)))
    p = np.abs(np.array(amps)) ** 2
    n = 3000
    outcomes = [await col.measure("r", seed=s) for s in range(n)]
    idx = [next(i for i, vec in enumerate(vecs) if np.allclose(vec, m.vector)) for m in outcomes]
    counts = np.bincount(idx, minlength=4)
    assert chisquare(counts, p * n).pvalue > 0.001
    assert {m.context for m in outcomes} == {"a", "b", "c"}
    assert all(np.isclose(m.probability, p[i]) for m, i in zip(outcomes[:50], idx))
    # context "a" projects onto branches 0 and 2 and renormalises: 0.25/0.55 vs 0.30/0.55
    proj = [await col.measure("r", context="a", seed=s) for s in range(n)]
    counts_a = np.array([sum(np.allclose(m.vector, vecs[i]) for m in proj) for i in (0, 2)])
    assert counts_a.sum() == n and {m.context for m in proj} == {"a"}
    assert chisquare(counts_a, np.array([0.25, 0.30]) / 0.55 * n).pvalue > 0.001
    # seeded measurement is reproducible; the record is unchanged without collapse
    assert (await col.measure("r", seed=42)).vector.tolist() == (await col.measure("r", seed=42)).vector.tolist()
    assert len((await col.get(["r"]))[0].branches) == 4


async def test_collapse_is_durable_and_reindexes(db):
    col = await db.create_collection("col", dim=2, metric="cosine", index={"type": "hnsw", "m": 8})
    await col.superpose("r", [(v(1, 0), "a", 1), (v(0, 1), "b", 1)])
    m = await col.measure("r", collapse=True, seed=3)
    rec = (await col.get(["r"]))[0]
    assert len(rec.branches) == 1 and rec.branches[0].context == m.context
    assert rec.branches[0].amplitude == 1 and rec.version == 2
    assert col.index.size == 1
    other = "b" if m.context == "a" else "a"
    assert await col.query(v(1, 1), context=other) == []
    assert [h.id for h in await col.query(v(1, 1), context=m.context)] == ["r"]


async def test_bad_superpositions_and_measurements_change_nothing(db):
    col = await db.create_collection("bad", dim=2, index={"type": "flat"})
    await col.superpose("r", [(v(1, 0), "a", 1), (v(0, 1), "b", 1)])
    with pytest.raises(InvalidArgument) as err:
        await col.superpose("r", [(v(1, 0), "a", 0), (v(0, 1), "b", 0j)])
    assert err.value.code == "invalid_amplitudes"
    with pytest.raises(InvalidArgument) as err:
        await col.superpose("r", [(v(1, 0), "a", float("nan"))])
    assert err.value.code == "invalid_amplitudes"
    with pytest.raises(InvalidArgument) as err:
        await col.superpose("r", [(v(1, 0, 0), "a", 1)])
    assert err.value.code == "dimension_mismatch"
    with pytest.raises(NotFound) as err:
        await col.measure("r", context="zzz", collapse=True, seed=0)
    assert err.value.code == "context_not_found"
    with pytest.raises(NotFound) as err:
        await col.measure("ghost")
    assert err.value.code == "not_found"
    rec = (await col.get(["r"]))[0]
    assert rec.version == 1 and len(rec.branches) == 2 and col.index.size == 2


async def test_zero_mixed_and_non_numeric_branches_are_refused(db):
    col = await db.create_collection("edge", dim=2, metric="cosine", index={"type": "flat"})
    for branches, code in [([(v(1, 0), "a", 1), (v(0, 1), "b", 0)], "invalid_argument"),
                           ([(v(1, 0), "a", 1), (v(0, 1, 0), "b", 1)], "dimension_mismatch"),
                           ([(v(1, 0), "a", 1), (v(0, 1), "b", "1")], "invalid_amplitudes"),
                           ([(v(1, 0), "a", 1), (v(0, 1), "b", True)], "invalid_amplitudes")]:
        with pytest.raises(InvalidArgument) as err:
            await col.superpose("r", branches)
        assert err.value.code == code, branches
    assert col.index.size == 0 and (await col.get(["r"]))[0] is None
    assert await col.query(v(0, 1), context="b") == []


async def test_seeded_collapse_is_reproducible_across_a_map_resize(tmp_path):
    """The collapse shares a write batch with a state too big for the map: the batch runs
    again after the map grows, and must pick the same branch."""
    import asyncio
    import threading

    import qstore

    branches = [(np.eye(8, dtype=np.float32)[j], f"c{j}", 1) for j in range(8)]
    async with await qstore.Database.open(str(tmp_path / "ref"), sweep_interval=None) as db:
        col = await db.create_collection("m", dim=8, index={"type": "flat"})
        await col.superpose("r", branches)
        expected = await col.measure("r", collapse=True, seed=11)
    async with await qstore.Database.open(str(tmp_path / "small"), sweep_interval=None, map_size=1 << 20) as db:
        col = await db.create_collection("m", dim=8, index={"type": "flat"})
        await col.superpose("r", branches)
        size = db._storage.env.info()["map_size"]
        entered, release = threading.Event(), threading.Event()
        blocker = asyncio.ensure_future(db._storage.write(lambda ctx: (entered.set(), release.wait())))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait)
        # the writer is busy: these two queue up and are committed as one batch
        measured = asyncio.ensure_future(col.measure("r", collapse=True, seed=11))
        big = np.ones(1 << 16, np.complex128) / np.sqrt(1 << 16)  # 1 MiB: more than the map holds
        stored = asyncio.ensure_future(db.put_state("big", big))
        await asyncio.sleep(0.1)
        release.set()
        await blocker
        got, _ = await measured, await stored
        assert db._storage.env.info()["map_size"] > size
    assert got.context == expected.context
    np.testing.assert_array_equal(got.vector, expected.vector)
