"""Filters against an independent brute-force reference."""
import numpy as np
import pytest

from qstore import InvalidArgument

COLORS = ["red", "green", "blue"]


def reference(md, f):
    """Straightforward re-statement of the documented semantics."""
    def kind(v):
        return "null" if v is None else "bool" if isinstance(v, bool) else "num" if isinstance(v, (int, float)) else "str"

    def values(v):
        return v if isinstance(v, list) else [v]

    def eq(a, b):
        return kind(a) == kind(b) and a == b

    def field(name, cond):
        present = name in md
        v = md.get(name)
        if not isinstance(cond, dict):
            cond = {"$eq": cond}
        for op, x in cond.items():
            if op == "$eq":
                ok = present and any(eq(e, x) for e in values(v))
            elif op == "$ne":
                ok = not (present and any(eq(e, x) for e in values(v)))
            elif op == "$in":
                ok = present and any(eq(e, y) for e in values(v) for y in x)
            elif op == "$nin":
                ok = not (present and any(eq(e, y) for e in values(v) for y in x))
            elif op == "$exists":
                ok = present == x
            else:
                cmp = {"$gt": lambda a: a > x, "$gte": lambda a: a >= x, "$lt": lambda a: a < x, "$lte": lambda a: a <= x}[op]
                ok = present and any(kind(e) == kind(x) and cmp(e) for e in values(v))
            if not ok:
                return False
        return True

    for key, val in f.items():
        if key == "$and" and not all(reference(md, s) for s in val):
            return False
        if key == "$or" and not any(reference(md, s) for s in val):
            return False
        if key == "$not" and reference(md, val):
            return False
        if not key.startswith("$") and not field(key, val):
            return False
    return True


def random_metadata(rng, i):
    md = {"n": int(rng.integers(0, 100)), "color": COLORS[rng.integers(0, 3)], "flag": bool(rng.integers(0, 2))}
    if rng.random() < 0.3:
        del md["flag"]
    if rng.random() < 0.4:
        md["tags"] = [COLORS[j] for j in range(3) if rng.random() < 0.5]
    if rng.random() < 0.1:
        md["score"] = float(rng.random())
    return md


def random_filter(rng, depth=0):
    choice = rng.integers(0, 9 if depth < 2 else 6)
    n = int(rng.integers(0, 100))
    c = COLORS[rng.integers(0, 3)]
    return [
        lambda: {"n": {"$gt": n}}, lambda: {"n": {"$lte": n, "$gte": n // 2}}, lambda: {"color": c},
        lambda: {"tags": {"$in": [c, "none"]}}, lambda: {"flag": {"$exists": bool(rng.integers(0, 2))}},
        lambda: {"color": {"$nin": [c]}, "flag": {"$ne": True}},
        lambda: {"$or": [random_filter(rng, depth + 1), random_filter(rng, depth + 1)]},
        lambda: {"$and": [random_filter(rng, depth + 1), random_filter(rng, depth + 1)]},
        lambda: {"$not": random_filter(rng, depth + 1)},
    ][choice]()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
async def test_filtered_search_matches_brute_force(db, rng, kind):
    n, d = 3000, 24
    X = rng.normal(size=(n, d)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    mds = [random_metadata(rng, i) for i in range(n)]
    col = await db.create_collection("f", dim=d, index={"type": kind, **({"m": 16} if kind == "hnsw" else {})})
    await col.upsert([str(i) for i in range(n)], X, mds)
    for trial in range(60):
        f = random_filter(rng)
        keep = np.array([reference(m, f) for m in mds])
        q = X[rng.integers(0, n)]
        page = await col.scroll(limit=n, filter=f)
        assert sorted(int(r.id) for r in page.records) == sorted(np.flatnonzero(keep).tolist()), f
        hits = await col.query(q, top_k=10, filter=f)
        survivors = np.flatnonzero(keep)
        exact = survivors[np.argsort(-(X[survivors] @ q), kind="stable")][:10]
        got = [int(h.id) for h in hits]
        assert all(keep[g] for g in got), f
        if kind == "flat" or len(survivors) <= 300:  # exact path, or the selector on flat
            assert got == exact.tolist(), f
        else:
            assert len(set(got) & set(exact.tolist())) >= 9, f


async def test_selective_filter_keeps_recall_on_hnsw(db, rng):
    """A 1%-selective filter: HNSW with a selector would miss most; exact fallback gets all."""
    n, d = 5000, 32
    X = rng.normal(size=(n, d)).astype(np.float32)
    col = await db.create_collection("sel", dim=d, index={"type": "hnsw", "m": 8, "ef_search": 16})
    await col.upsert([str(i) for i in range(n)], X, [{"bucket": i % 100} for i in range(n)])
    for b in range(5):
        q = rng.normal(size=d).astype(np.float32)
        hits = await col.query(q, top_k=20, filter={"bucket": b})
        members = np.arange(b, n, 100)
        Xn = X[members] / np.linalg.norm(X[members], axis=1, keepdims=True)
        exact = members[np.argsort(-(Xn @ (q / np.linalg.norm(q))))][:20]
        assert [int(h.id) for h in hits] == exact.tolist()


@pytest.mark.parametrize("bad", [
    {"n": {"$regex": "x"}}, {"$xor": []}, {"n": {"$in": 3}}, {"n": {"$gt": [1]}}, {"n": {"$exists": "yes"}},
    {"$and": []}, {"$or": {}}, {"n": {}}, {"": 1}, ["n"], {"n": {"$eq": {"a": 1}}}, {"n": {"gt": 3}},
])
async def test_bad_filters_are_rejected(db, bad):
    col = await db.create_collection("bf", dim=4)
    await col.upsert(["a"], np.ones((1, 4)), [{"n": 1}])
    with pytest.raises(InvalidArgument) as err:
        await col.query(np.ones(4), filter=bad)
    assert err.value.code == "invalid_filter"
    with pytest.raises(InvalidArgument):
        await col.scroll(filter=bad)
