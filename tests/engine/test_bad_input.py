"""Every bad input raises a typed error with a stable code and changes nothing."""
import numpy as np
import pytest

from qstore import InvalidArgument, LimitExceeded, NotFound, QStoreError


@pytest.fixture
async def col(db):
    c = await db.create_collection("bad", dim=4, metric="cosine")
    await c.upsert(["keep"], np.ones((1, 4)), [{"a": 1}])
    return c


async def snapshot(col):
    rec = (await col.get(["keep"]))[0]
    return await col.count(), rec.version, rec.metadata, [h.id for h in await col.query(np.ones(4))]


@pytest.mark.parametrize("call,code", [
    (lambda c: c.upsert(["x"], np.ones((1, 5))), "dimension_mismatch"),
    (lambda c: c.upsert(["x", "y"], np.ones((1, 4))), "dimension_mismatch"),
    (lambda c: c.upsert(["x"], np.array([[1, np.nan, 0, 0]])), "invalid_vector"),
    (lambda c: c.upsert(["x"], np.array([[1, np.inf, 0, 0]])), "invalid_vector"),
    (lambda c: c.upsert(["x"], np.zeros((1, 4))), "invalid_vector"),
    (lambda c: c.upsert([""], np.ones((1, 4))), "invalid_id"),
    (lambda c: c.upsert(["é" * 129], np.ones((1, 4))), "invalid_id"),
    (lambda c: c.upsert([7], np.ones((1, 4))), "invalid_id"),
    (lambda c: c.upsert(["x", "x"], np.ones((2, 4))), "invalid_id"),
    (lambda c: c.upsert(["keep"], np.ones((1, 4)), [{"a": object()}]), "invalid_metadata"),
    (lambda c: c.upsert(["keep"], np.ones((1, 4)), [{"a": {"nested": 1}}]), "invalid_metadata"),
    (lambda c: c.upsert(["keep"], np.ones((1, 4)), [{1: "x"}]), "invalid_metadata"),
    (lambda c: c.upsert(["keep"], np.ones((1, 4)), [{"a": float("nan")}]), "invalid_metadata"),
    (lambda c: c.upsert(["keep"], np.ones((1, 4)), {"a": 1}), "invalid_metadata"),
    (lambda c: c.upsert(["keep"], np.ones((1, 4)), coherence_time=-1), "invalid_coherence_time"),
    (lambda c: c.query(np.ones(4), top_k=0), "invalid_top_k"),
    (lambda c: c.query(np.ones(4), top_k=-3), "invalid_top_k"),
    (lambda c: c.query(np.ones(4), top_k=10_001), "invalid_top_k"),
    (lambda c: c.query(np.ones(3)), "dimension_mismatch"),
    (lambda c: c.query(np.array([np.nan, 0, 0, 1])), "invalid_vector"),
    (lambda c: c.query(np.array([1, -np.inf, 0, 1])), "invalid_vector"),
    (lambda c: c.query(np.array([[0, 0, 0, 1], [0, np.nan, 0, 1]])[1]), "invalid_vector"),  # a strided view
    (lambda c: c.query(np.ones(4), filter={"a": {"$near": 1}}), "invalid_filter"),
    (lambda c: c.query(np.ones(4), tunneling=-1.0), "invalid_tunneling"),
    (lambda c: c.scroll(limit=0), "invalid_argument"),
])
async def test_rejected_and_unchanged(col, call, code):
    before = await snapshot(col)
    with pytest.raises(QStoreError) as err:
        await call(col)
    assert err.value.code == code
    assert isinstance(err.value, (InvalidArgument, LimitExceeded))
    assert await snapshot(col) == before


async def test_unknown_collection(db):
    with pytest.raises(NotFound) as err:
        await db.collection("nope")
    assert err.value.code == "collection_not_found" and err.value.status == 404
    with pytest.raises(NotFound):
        await db.drop_collection("nope")


@pytest.mark.parametrize("kwargs,code", [
    ({"name": "bad name", "dim": 4}, "invalid_name"),
    ({"name": "", "dim": 4}, "invalid_name"),
    ({"name": "ok", "dim": 0}, "invalid_argument"),
    ({"name": "ok", "dim": 4, "metric": "hamming"}, "invalid_metric"),
    ({"name": "ok", "dim": 4, "index": {"type": "lsh"}}, "invalid_index"),
    ({"name": "ok", "dim": 4, "index": {"type": "hnsw", "m": -1}}, "invalid_index"),
    ({"name": "ok", "dim": 4, "index": {"type": "hnsw", "nlist": 3}}, "invalid_index"),
    ({"name": "ok", "dim": 4, "coherence_time": 0}, "invalid_coherence_time"),
])
async def test_bad_collection_specs(db, kwargs, code):
    with pytest.raises(InvalidArgument) as err:
        await db.create_collection(**kwargs)
    assert err.value.code == code
    assert await db.list_collections() == []


async def test_duplicate_collection(db):
    await db.create_collection("dup", dim=4)
    with pytest.raises(QStoreError) as err:
        await db.create_collection("dup", dim=8)
    assert err.value.code == "collection_exists" and err.value.status == 409
    assert (await db.collection("dup")).dim == 4


async def test_failed_write_in_a_batch_does_not_affect_neighbours(db):
    """Group commit: one failing call in a batch is rolled back alone."""
    import asyncio
    col = await db.create_collection("gc", dim=4)
    await col.upsert(["a"], np.ones((1, 4)))
    results = await asyncio.gather(
        col.upsert(["b"], np.ones((1, 4))),
        col.entangle("g", ["a", "ghost"], 0.5),
        col.upsert(["c"], np.ones((1, 4))),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], NotFound)
    assert await col.count() == 3
    assert await col.correlation("a", "b") == 0.0


async def test_huge_finite_query_is_not_taken_for_infinite(col):
    """A query's finiteness is read off its squared norm, which overflows float32 for entries
    near 1e20: such a vector is still finite and is answered."""
    hits = await col.query(np.array([1e20, 0, 0, 1e20], np.float32), top_k=1)
    assert len(hits) == 1
