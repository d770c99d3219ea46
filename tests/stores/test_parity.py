"""The parity suite: the same calls, the same answers, on every store (see conftest.STORES).

Answers are checked against independent oracles (brute-force scores and filters in NumPy), and
a scripted session of every primitive must give the same transcript on LMDB and on Qdrant.
"""
import random

import numpy as np
import pytest

import qstore
from qstore.errors import QStoreError
from qstore.index.filters import compile_filter

from .conftest import open_args

DIM = 8


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def oracle(recs, q, metric, context=None, pred=None):
    """Brute-force ranking: a record scores Σ p_i·sim(q, v_i) over its branches (those labelled
    ``context``, renormalised, when one is given); sim is cosine, inner product or −‖q−v‖²."""
    out = []
    for rid, (branches, md) in recs.items():
        if pred is not None and not pred(md):
            continue
        bs = [b for b in branches if context is None or b[1] == context]
        if not bs:
            continue
        v = np.array([b[0] for b in bs], np.float64)
        p = np.array([abs(complex(b[2])) ** 2 for b in bs])
        p = p / p.sum()
        if metric == "cosine":
            sims = _unit(v) @ _unit(np.asarray(q, np.float64))
        elif metric == "ip":
            sims = v @ q
        else:
            sims = -((v - q) ** 2).sum(1)
        out.append((rid, float(p @ sims)))
    return sorted(out, key=lambda r: -r[1])


async def _fill(col, rng, n=120, superposed=25, contexts=("a", "b", "c")):
    recs = {}
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    mds = [{"i": i, "tag": ["x", "y", "z"][i % 3], "w": float(i % 7) / 2} for i in range(n)]
    ids = [f"r{i:03d}" for i in range(n)]
    await col.upsert(ids, X, mds)
    for rid, x, md in zip(ids, X, mds):
        recs[rid] = ([(x, None, 1.0)], md)
    for j in range(superposed):
        k = int(rng.integers(2, 5))
        branches = [(rng.normal(size=DIM).astype(np.float32), contexts[int(rng.integers(len(contexts)))],
                     complex(rng.normal(), rng.normal())) for _ in range(k)]
        md = {"i": n + j, "tag": "s", "w": 1.5}
        await col.superpose(f"s{j:03d}", branches, md)
        recs[f"s{j:03d}"] = (branches, md)
    return recs


# ---------------------------------------------------------------------------- CRUD
async def test_crud_round_trip(sdb, rng):
    col = await sdb.create_collection("c", dim=DIM, metric="l2")
    X = rng.normal(size=(30, DIM)).astype(np.float32)
    ids = [f"id-{i}" for i in range(30)]
    assert await col.upsert(ids, X, [{"n": i, "l": [i, "s"]} for i in range(30)]) == 30
    assert await col.count() == 30
    got = await col.get(["id-3", "nope", "id-3"])
    assert got[1] is None and got[0].id == got[2].id == "id-3"
    np.testing.assert_array_equal(got[0].vector, X[3])  # l2 keeps the vector bit for bit
    assert got[0].metadata == {"n": 3, "l": [3, "s"]} and got[0].version == 1
    await col.upsert(["id-3"], X[4:5], [{"n": 99}])
    again = (await col.get(["id-3"]))[0]
    assert again.version == 2 and again.metadata == {"n": 99}
    np.testing.assert_array_equal(again.vector, X[4])
    assert await col.delete(["id-3", "id-4", "missing"]) == 2
    assert await col.count() == 28
    assert (await col.get(["id-3"]))[0] is None
    seen, cursor = [], None
    while True:
        page = await col.scroll(limit=7, cursor=cursor)
        seen.extend(r.id for r in page.records)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(seen) == sorted(set(ids) - {"id-3", "id-4"}) and len(seen) == 28


async def test_cosine_vectors_round_trip(sdb, rng):
    col = await sdb.create_collection("c", dim=DIM)
    X = (rng.normal(size=(5, DIM)) * 7).astype(np.float32)
    await col.upsert([str(i) for i in range(5)], X)
    for rec, x in zip(await col.get([str(i) for i in range(5)]), X):
        np.testing.assert_allclose(rec.vector, x, rtol=1e-6)  # the stored, not the normalised, vector


# ---------------------------------------------------------------------------- search
@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
async def test_search_matches_brute_force(sdb, rng, metric):
    col = await sdb.create_collection("c", dim=DIM, metric=metric, index={"type": "flat"})
    recs = await _fill(col, rng)
    for _ in range(5):
        q = rng.normal(size=DIM).astype(np.float32)
        for context in (None, "a"):
            want = oracle(recs, q, metric, context)[:10]
            hits = await col.query(q, top_k=10, context=context)
            assert [h.id for h in hits] == [w[0] for w in want]
            np.testing.assert_allclose([h.score for h in hits], [w[1] for w in want], rtol=1e-4, atol=1e-4)
    batch = await col.query_batch(rng.normal(size=(3, DIM)).astype(np.float32), top_k=4)
    assert [len(b) for b in batch] == [4, 4, 4]


def _random_filter(rnd, depth=0):
    r = rnd.random()
    if depth < 2 and r < 0.15:
        return {"$or": [_random_filter(rnd, depth + 1), _random_filter(rnd, depth + 1)]}
    if depth < 2 and r < 0.25:
        return {"$not": _random_filter(rnd, depth + 1)}
    if depth < 2 and r < 0.3:
        return {"$and": [_random_filter(rnd, depth + 1), _random_filter(rnd, depth + 1)]}
    key = rnd.choice(["x", "y", "z"])
    scalars = [0, 1, 2, 2.5, -1, True, False, "a", "b"]
    op = rnd.choice(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists", None])
    if op is None:
        return {key: rnd.choice(scalars)}
    if op in ("$in", "$nin"):
        return {key: {op: rnd.sample(scalars, rnd.randint(0, 3))}}
    if op == "$exists":
        return {key: {op: rnd.random() < 0.5}}
    if op[1] in "gl":
        return {key: {op: rnd.choice([0, 1, 2, 2.5, -1])}}
    return {key: {op: rnd.choice(scalars)}}


async def test_filters_match_brute_force(sdb, rng):
    """Random filters over awkward metadata (lists, nulls, bools beside
    numbers, missing keys) select exactly what the reference predicate selects."""
    rnd = random.Random(7)
    values = [0, 1, 2, 2.5, -1, True, False, "a", "b", None, [], ["a", "b"], [1, 2], [True], ["a", 1],
              [None]]
    mds = [{k: rnd.choice(values) for k in "xyz" if rnd.random() < 0.7} for _ in range(150)]
    ids = [f"m{i}" for i in range(150)]
    col = await sdb.create_collection("c", dim=DIM, index={"type": "flat"})
    await col.upsert(ids, rng.normal(size=(150, DIM)).astype(np.float32), mds)
    q = rng.normal(size=DIM).astype(np.float32)
    for _ in range(60):
        f = _random_filter(rnd)
        pred = compile_filter(f)
        want = {rid for rid, md in zip(ids, mds) if pred(md)}
        assert {h.id for h in await col.query(q, top_k=150, filter=f)} == want, f
        page = await col.scroll(limit=150, filter=f)
        assert {r.id for r in page.records} == want, f


async def test_filtered_search_ranks_like_brute_force(sdb, rng):
    col = await sdb.create_collection("c", dim=DIM, index={"type": "flat"})
    recs = await _fill(col, rng)
    f = {"$or": [{"tag": "x"}, {"w": {"$gte": 1.5}}]}
    q = rng.normal(size=DIM).astype(np.float32)
    want = oracle(recs, q, "cosine", None, compile_filter(f))[:15]
    hits = await col.query(q, top_k=15, filter=f)
    assert [h.id for h in hits] == [w[0] for w in want]


# ---------------------------------------------------------------------------- expiry
async def test_expiry_hides_then_sweeps(sdb, clock, rng):
    col = await sdb.create_collection("c", dim=DIM, index={"type": "flat"})
    X = rng.normal(size=(6, DIM)).astype(np.float32)
    await col.upsert(["a", "b", "c"], X[:3], coherence_time=10)
    await col.upsert(["d", "e", "f"], X[3:])
    clock.advance(11)
    assert await col.count() == 3
    assert (await col.get(["a"]))[0] is None
    assert {h.id for h in await col.query(X[0], top_k=6)} == {"d", "e", "f"}
    assert {r.id for r in (await col.scroll()).records} == {"d", "e", "f"}
    assert await sdb.sweep() == 3
    assert await sdb.sweep() == 0
    assert await col.count() == 3


async def test_collapse_on_decohere(sdb, clock, rng):
    col = await sdb.create_collection("c", dim=DIM, on_decohere="collapse", index={"type": "flat"})
    v = rng.normal(size=(3, DIM)).astype(np.float32)
    await col.superpose("s", [(v[0], "a", 0.6), (v[1], "b", 0.8)], coherence_time=5)
    await col.upsert(["plain"], v[2:], coherence_time=5)
    clock.advance(6)
    rec = (await col.get(["s"]))[0]
    assert len(rec.branches) == 1 and rec.branches[0].context == "b" and rec.expires_at is None
    assert (await col.get(["plain"]))[0] is None
    assert [h.id for h in await col.query(v[1], top_k=5)] == ["s"]
    assert await col.count() == 1
    assert await sdb.sweep() == 2
    rec2 = (await col.get(["s"]))[0]
    assert len(rec2.branches) == 1 and rec2.version == rec.version + 1


# ---------------------------------------------------------------------------- primitives
async def test_entanglement(sdb, rng):
    col = await sdb.create_collection("c", dim=DIM, metric="l2")
    X = rng.normal(size=(4, DIM)).astype(np.float32)
    await col.upsert(["a", "b", "c", "d"], X)
    await col.entangle("g", ["a", "b", "c"], 0.5)
    await col.entangle("h", ["a", "b"], 0.5)
    assert await col.correlation("a", "b") == pytest.approx(0.75)
    assert await col.correlation("a", "c") == pytest.approx(0.5)
    assert await col.correlation("a", "d") == 0.0
    new = rng.normal(size=DIM).astype(np.float32)
    await col.update("a", new)
    got = {r.id: r.vector for r in await col.get(["a", "b", "c", "d"])}
    np.testing.assert_allclose(got["a"], new, rtol=1e-6)
    np.testing.assert_allclose(got["b"], X[1] + 0.75 * (new - X[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["c"], X[2] + 0.5 * (new - X[0]), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got["d"], X[3])
    await col.disentangle("h", ["b"])  # h dissolves: one member left
    assert await col.correlation("a", "b") == pytest.approx(0.5)
    await col.delete(["c"])
    await col.disentangle("g", ["b"])
    assert await col.correlation("a", "b") == 0.0
    with pytest.raises(QStoreError) as e:
        await col.disentangle("g")
    assert e.value.code == "not_found"
    # a dissolved group is new again: its old lone member does not come back with it
    await col.entangle("g", ["b", "d"], 0.3)
    assert await col.correlation("a", "b") == 0.0 and await col.correlation("b", "d") == pytest.approx(0.3)


async def test_measure_and_correlated_collapse(sdb, rng):
    col = await sdb.create_collection("c", dim=DIM)
    v = rng.normal(size=(4, DIM)).astype(np.float32)
    await col.superpose("a", [(v[0], "x", 1), (v[1], "y", 1)])
    await col.superpose("b", [(v[2], "x", 1), (v[3], "y", 1)])
    await col.entangle("g", ["a", "b"], 1.0)
    counts = {"x": 0, "y": 0}
    for s in range(200):
        counts[(await col.measure("a", seed=s)).context] += 1
    assert 60 < counts["x"] < 140
    m = await col.measure("a", context="y", collapse=True, seed=3)
    assert m.context == "y" and m.probability == pytest.approx(1.0)
    a, b = await col.get(["a", "b"])
    assert [br.context for br in a.branches] == ["y"] and [br.context for br in b.branches] == ["y"]
    with pytest.raises(QStoreError) as e:
        await col.measure("a", context="x")
    assert e.value.code == "context_not_found"


async def test_tunneling(sdb, rng):
    col = await sdb.create_collection("c", dim=DIM, index={"type": "flat"})
    centers = rng.normal(size=(4, DIM)) * 10
    X = np.concatenate([c + rng.normal(size=(40, DIM)) for c in centers]).astype(np.float32)
    ids = [f"p{i}" for i in range(len(X))]
    await col.upsert(ids, X)
    assert await col.build_regions(4, seed=1) == 4
    q = X[0]
    plain = await col.query(q, top_k=10)
    assert [h.id for h in await col.query(q, top_k=10, tunneling=0)] == [h.id for h in plain]
    far = await col.query(q, top_k=10, tunneling=50.0, seed=1, per_region=3)
    assert len(far) == 10
    home = {f"p{i}" for i in range(40)}
    assert sum(h.id in home for h in far) <= 10 - 3  # other regions took places the home region had
    with pytest.raises(QStoreError) as e:
        await col.query(q, tunneling=-1)
    assert e.value.code == "invalid_tunneling"


# ---------------------------------------------------------------------------- bad input
BAD_CALLS = [
    ("upsert", (["a"], np.zeros((1, DIM + 1))), {}, "dimension_mismatch"),
    ("upsert", (["a"], np.full((1, DIM), np.nan)), {}, "invalid_vector"),
    ("upsert", ([""], np.ones((1, DIM))), {}, "invalid_id"),
    ("query", (np.ones(DIM),), {"top_k": 0}, "invalid_top_k"),
    ("query", (np.ones(DIM),), {"filter": {"a": {"$regex": "x"}}}, "invalid_filter"),
    ("scroll", (), {"limit": 0}, "invalid_argument"),
    ("superpose", ("s", [(np.ones(DIM), "a", 0)]), {}, "invalid_amplitudes"),
    ("entangle", ("g", ["r0"]), {}, "invalid_argument"),
    ("entangle", ("g", ["r0", "r1"]), {"strength": 2}, "invalid_strength"),
    ("update", ("missing", np.ones(DIM)), {}, "not_found"),
    ("measure", ("missing",), {}, "not_found"),
]


@pytest.mark.parametrize("method,args,kwargs,code", BAD_CALLS, ids=[c[3] + "-" + c[0] for c in BAD_CALLS])
async def test_bad_input_refused_and_changes_nothing(sdb, rng, method, args, kwargs, code):
    col = await sdb.create_collection("c", dim=DIM)
    await col.upsert(["r0", "r1"], rng.normal(size=(2, DIM)).astype(np.float32))
    before = [(r.id, r.version) for r in await col.get(["r0", "r1"])]
    with pytest.raises(QStoreError) as e:
        await getattr(col, method)(*args, **kwargs)
    assert e.value.code == code
    assert [(r.id, r.version) for r in await col.get(["r0", "r1"])] == before and await col.count() == 2


async def test_bad_store_refused(sdb):
    with pytest.raises(QStoreError) as e:
        await sdb.create_collection("c", dim=DIM, store="pinecone")
    assert e.value.code == "invalid_store"
    assert await sdb.list_collections() == []


# ---------------------------------------------------------------------------- one transcript
async def _session(col, clock):
    """Every primitive, seeded: a pure function of the calls, whatever the store."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20, DIM)).astype(np.float32)
    out = []
    await col.upsert([f"r{i}" for i in range(20)], X, [{"i": i} for i in range(20)])
    await col.superpose("s1", [(X[0], "a", 1), (X[1], "b", 1j), (X[2], "a", 0.5)], {"kind": "s"})
    await col.superpose("s2", [(X[3], "a", 1), (X[4], "b", 2)], {"kind": "s"}, coherence_time=30)
    await col.entangle("g", ["s1", "s2", "r5"], 0.7)
    for s in range(5):
        m = await col.measure("s1", seed=s)
        out.append(("measure", m.context, round(m.probability, 6)))
    m = await col.measure("s2", context="b", collapse=True, seed=11)
    out.append(("collapse", m.context))
    await col.update("r5", X[9])
    for rid in ("s1", "s2", "r5"):
        rec = (await col.get([rid]))[0]
        out.append((rid, rec.version, [b.context for b in rec.branches],
                    np.round(rec.vector, 4).tolist()))
    out.append(("corr", round(await col.correlation("s1", "r5"), 6)))
    q = X[7]
    out.append(("query", [(h.id, round(h.score, 4)) for h in await col.query(q, top_k=6)]))
    out.append(("ctx", [(h.id, round(h.score, 4)) for h in await col.query(q, top_k=4, context="a")]))
    out.append(("filter", [h.id for h in await col.query(q, top_k=5, filter={"i": {"$lt": 10}})]))
    clock.advance(31)
    out.append(("count", await col.count()))
    await col.delete(["r0", "r1"])
    out.append(("count", await col.count(), sorted(r.id for r in (await col.scroll(limit=100)).records)))
    return out


async def test_same_transcript_on_lmdb_and_qdrant(tmp_path, clock):
    transcripts = []
    for store in ("lmdb", "qdrant"):
        db = await qstore.Database.open(str(tmp_path / store), clock=clock, sweep_interval=None,
                                        **open_args(store))
        try:
            col = await db.create_collection("t", dim=DIM, index={"type": "flat"})
            start = clock.t
            transcripts.append(await _session(col, clock))
            clock.t = start
        finally:
            await db.close()
    assert transcripts[0] == transcripts[1]
