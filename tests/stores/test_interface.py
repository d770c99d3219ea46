"""The store interface (qstore.stores.base.RecordStore) itself, on both stores: documents
written through it come back unchanged, and its search, count, scroll and sweep agree with
brute force over what was written."""
import numpy as np
import pytest

from qstore import records
from qstore.index.filters import compile_filter
from qstore.stores.base import Stored

from .test_parity import oracle

DIM = 6


async def test_interface_round_trip_and_search(sdb, clock, rng):
    col = await sdb.create_collection("c", dim=DIM, metric="l2", index={"type": "flat"})
    store = col.store
    now = clock()
    recs, puts = {}, {}
    for i in range(60):
        k = 1 + i % 3
        branches = [(rng.normal(size=DIM).astype(np.float32), ["a", "b", None][j], complex(rng.normal(), 0.3))
                    for j in range(k)]
        total = sum(abs(a) ** 2 for _, _, a in branches) ** 0.5
        branches = [(v, c, a / total) for v, c, a in branches]
        md = {"i": i, "even": i % 2 == 0}
        expires = now + 50 if i % 5 == 0 else None
        puts[f"r{i:02d}"] = Stored(records.make_doc(branches, md, expires, 3), {})
        recs[f"r{i:02d}"] = (branches, md)
    await store.write(puts)
    got = await store.read(list(puts))
    for rid, s in puts.items():
        a, b = got[rid].doc, s.doc
        assert (a["m"], a["e"], a["v"]) == (b["m"], b["e"], b["v"])
        assert [x[1:] for x in a["b"]] == [x[1:] for x in b["b"]]  # vectors bit for bit, amplitudes, contexts
    q = rng.normal(size=DIM).astype(np.float32)
    for flt, context in ((None, None), ({"even": True}, None), (None, "a"), ({"i": {"$lt": 30}}, "b")):
        pred = compile_filter(flt) if flt else None
        want = oracle(recs, q, "l2", context, pred)[:7]
        hits = await store.search(q, 7, flt, context, now)
        assert [h[0] for h in hits] == [w[0] for w in want]
        np.testing.assert_allclose([h[1] for h in hits], [w[1] for w in want], rtol=1e-4, atol=1e-4)
    assert await store.count(now) == 60
    rows, cursor, seen = [], None, []
    while True:
        rows, cursor = await store.scroll_stored(25, cursor, store.filter_for({"even": False}))
        seen.extend(rid for rid, _ in rows)
        if cursor is None:
            break
    assert sorted(seen) == sorted(r for r, (_, md) in recs.items() if not md["even"])
    await store.put_groups({"g": {"members": ["r01", "r02"], "strength": 0.5}})
    assert (await store.groups()) == {"g": {"members": ["r01", "r02"], "strength": 0.5}}
    clock.advance(60)
    assert await store.count(clock()) == 48
    assert await store.sweep(clock()) == 12
    assert len(await store.read(list(puts))) == 48
    await store.write({}, ["r01"])
    assert await store.count(clock()) == 47 and await store.groups() == {}


@pytest.mark.parametrize("flt", [{"a": {"$bad": 1}}, "not a map"])
async def test_interface_refuses_bad_filters(sdb, flt):
    col = await sdb.create_collection("c", dim=DIM)
    with pytest.raises(Exception) as e:
        col.store.filter_for(flt)
    assert getattr(e.value, "code", None) == "invalid_filter"
