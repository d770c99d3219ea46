import numpy as np
import pytest

import qstore
from qstore import InvalidArgument, NotFound


def unit(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x)


async def test_update_moves_partners_by_the_formula(db, rng):
    col = await db.create_collection("e", dim=6, metric="cosine", index={"type": "flat"})
    X = rng.normal(size=(3, 6)).astype(np.float32)
    await col.upsert(["a", "b", "c"], X)
    await col.entangle("g", ["a", "b"], strength=0.8)
    assert await col.correlation("a", "b") == pytest.approx(0.8)
    assert await col.correlation("b", "a") == pytest.approx(0.8)
    assert await col.correlation("a", "c") == 0.0
    new = rng.normal(size=6).astype(np.float32)
    await col.update("a", new)
    a, b, c = await col.get(["a", "b", "c"])
    np.testing.assert_allclose(a.vector, new, rtol=1e-6)
    expected = unit(unit(X[1]) + 0.8 * (unit(new) - unit(X[0])))
    np.testing.assert_allclose(b.vector, expected, atol=1e-6)
    np.testing.assert_allclose(c.vector, X[2])  # not entangled: untouched
    assert (await col.query(expected.astype(np.float32), top_k=1))[0].id == "b"  # re-indexed


async def test_update_under_l2_is_not_renormalised(db, rng):
    col = await db.create_collection("l2", dim=4, metric="l2", index={"type": "flat"})
    X = rng.normal(size=(2, 4)).astype(np.float32)
    await col.upsert(["a", "b"], X)
    await col.entangle("g", ["a", "b"], strength=0.5)
    new = X[0] + 2.0
    await col.update("a", new)
    b = (await col.get(["b"]))[0]
    np.testing.assert_allclose(b.vector, X[1] + 0.5 * 2.0, atol=1e-6)


async def test_collapse_propagates_with_probability_rho(fastdb):
    col = await fastdb.create_collection("corr", dim=2, index={"type": "flat"})
    rho, trials, collapsed = 0.7, 400, 0
    e0, e1 = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    for t in range(trials):
        a, b = f"a{t}", f"b{t}"
        await col.superpose(a, [(e0, "x", 1), (e1, "y", 1)])
        await col.superpose(b, [(e0, "x", 1), (e1, "y", 1)])
        await col.entangle(f"g{t}", [a, b], strength=rho)
        m = await col.measure(a, collapse=True, seed=t)
        rb = (await col.get([b]))[0]
        if len(rb.branches) == 1:
            assert rb.branches[0].context == m.context  # collapses to the same context
            collapsed += 1
    sigma = np.sqrt(rho * (1 - rho) / trials)
    assert abs(collapsed / trials - rho) < 4 * sigma, collapsed / trials


async def test_groups_persist_and_deleting_a_member_leaves_them(tmp_path, rng):
    path = str(tmp_path / "g")
    X = rng.normal(size=(3, 4)).astype(np.float32)
    async with await qstore.Database.open(path) as db:
        col = await db.create_collection("g", dim=4)
        await col.upsert(["a", "b", "c"], X)
        await col.entangle("trio", ["a", "b", "c"], strength=0.5)
        await col.entangle("pair", ["a", "b"], strength=0.9)
    async with await qstore.Database.open(path) as db:
        col = await db.collection("g")
        assert await col.correlation("a", "b") == pytest.approx(1 - 0.5 * 0.1)  # one ρ per pair
        assert await col.correlation("b", "c") == pytest.approx(0.5)
        await col.delete(["a"])
        with pytest.raises(NotFound):
            await col.correlation("a", "b")
        assert await col.correlation("b", "c") == pytest.approx(0.5)
        await col.delete(["c"])  # trio is down to b alone: dissolved
        await col.upsert(["c"], X[2:3])
        assert await col.correlation("b", "c") == 0.0
        await col.update("b", X[0])
        np.testing.assert_allclose((await col.get(["c"]))[0].vector, X[2])


async def test_bad_entanglement_changes_nothing(db, rng):
    col = await db.create_collection("bad", dim=4)
    await col.upsert(["a", "b"], rng.normal(size=(2, 4)))
    for args, code in [(("g", ["a", "b"], 1.5), "invalid_strength"), (("g", ["a", "b"], -0.1), "invalid_strength"),
                       (("g", ["a"], 0.5), "invalid_argument"), (("g", ["a", "zz"], 0.5), "not_found"),
                       (("bad group", ["a", "b"], 0.5), "invalid_name")]:
        with pytest.raises((InvalidArgument, NotFound)) as err:
            await col.entangle(*args)
        assert err.value.code == code
    assert await col.correlation("a", "b") == 0.0
    with pytest.raises(NotFound):
        await col.update("zz", np.ones(4))


async def test_overlapping_groups_give_one_rho_to_update_collapse_and_correlation(fastdb):
    """Groups with ρ 0.5 and 0.9 share a and b: ρ_ab = 1 − 0.5·0.1 = 0.95 everywhere."""
    col = await fastdb.create_collection("overlap", dim=2, metric="l2", index={"type": "flat"})
    await col.upsert(["a", "b"], np.zeros((2, 2), np.float32))
    await col.entangle("weak", ["a", "b"], strength=0.5)
    await col.entangle("strong", ["a", "b"], strength=0.9)
    assert await col.correlation("a", "b") == pytest.approx(0.95)
    assert await col.correlation("b", "a") == pytest.approx(0.95)
    assert await col.correlation("a", "a") == 1.0
    await col.update("a", np.array([1.0, 0.0], np.float32))
    np.testing.assert_allclose((await col.get(["b"]))[0].vector, [0.95, 0.0], atol=1e-6)  # not 1.4
    e0, e1 = np.array([1, 0], np.float32), np.array([0, 1], np.float32)
    trials, followed = 300, 0
    for t in range(trials):
        a, b = f"a{t}", f"b{t}"
        await col.superpose(a, [(e0, "x", 1), (e1, "y", 1)])
        await col.superpose(b, [(e0, "x", 1), (e1, "y", 1)])
        await col.entangle(f"w{t}", [a, b], strength=0.5)
        await col.entangle(f"s{t}", [a, b], strength=0.9)
        await col.measure(a, collapse=True, seed=t)
        followed += len((await col.get([b]))[0].branches) == 1
    assert abs(followed / trials - 0.95) < 4 * np.sqrt(0.95 * 0.05 / trials), followed / trials


async def test_entangle_adds_members_without_changing_existing_pairs(db, rng):
    col = await db.create_collection("grow", dim=4)
    await col.upsert(["a", "b", "c", "d"], rng.normal(size=(4, 4)))
    await col.entangle("g", ["a", "b"], strength=0.5)
    with pytest.raises(InvalidArgument) as err:
        await col.entangle("g", ["b", "c"], strength=0.9)
    assert err.value.code == "invalid_strength"
    assert await col.correlation("a", "b") == pytest.approx(0.5)
    assert await col.correlation("a", "c") == 0.0  # the refused call changed nothing
    await col.entangle("g", ["c"], strength=0.5)  # one id joins an existing group
    assert [await col.correlation("a", x) for x in "bc"] == pytest.approx([0.5, 0.5])


async def test_disentangle_removes_members_and_dissolves_groups(db, rng):
    col = await db.create_collection("dis", dim=4, metric="l2", index={"type": "flat"})
    X = rng.normal(size=(3, 4)).astype(np.float32)
    await col.upsert(["a", "b", "c"], X)
    await col.entangle("g", ["a", "b", "c"], strength=0.5)
    await col.entangle("h", ["a", "b"], strength=0.5)
    await col.disentangle("g", ["c", "nobody"])
    assert await col.correlation("a", "c") == 0.0 and await col.correlation("a", "b") == pytest.approx(0.75)
    await col.update("a", X[0] + 1)
    np.testing.assert_allclose((await col.get(["c"]))[0].vector, X[2])  # no longer moves with a
    await col.disentangle("g", ["b"])  # g is down to a alone: dissolved
    assert await col.correlation("a", "b") == pytest.approx(0.5)
    with pytest.raises(NotFound):
        await col.disentangle("g")
    await col.disentangle("h")  # every member
    assert await col.correlation("a", "b") == 0.0
    with pytest.raises(InvalidArgument) as err:
        await col.disentangle("bad group")
    assert err.value.code == "invalid_name"
