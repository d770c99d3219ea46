"""The plain-query fast path (``Collection._plain_search``) answers exactly as the general
path (``_search_sync``) does, over every kind of record a collection holds."""
import asyncio

import numpy as np
import pytest

from qstore.errors import InvalidArgument

DIM = 16


@pytest.fixture(params=["delete", "collapse"])
async def col(db, clock, request):
    c = await db.create_collection(f"plain_{request.param}", dim=DIM, on_decohere=request.param,
                                   index={"type": "hnsw", "m": 16, "ef_construction": 64, "ef_search": 64})
    rng = np.random.default_rng(7)
    x = rng.standard_normal((400, DIM)).astype(np.float32)
    await c.upsert([f"r{i}" for i in range(300)], x[:300], metadata=[{"i": i, "even": i % 2 == 0} for i in range(300)])
    await c.upsert([f"t{i}" for i in range(40)], x[300:340], coherence_time=10.0)  # decohere below
    await c.delete([f"r{i}" for i in range(0, 300, 7)])
    await c.upsert([f"r{i}" for i in range(1, 60, 3)], x[340:360])  # rewritten: new ids, old ones tombstoned
    for j in range(5):  # superposed records switch the general path to Born ranking
        await c.superpose(f"s{j}", [(x[360 + 2 * j], "a", 0.6), (x[361 + 2 * j], "b", 0.8)],
                          metadata={"j": j}, coherence_time=10.0 if j % 2 else None)
    clock.advance(20.0)  # the timed records are now due but not swept
    return c


def general(col, qs, k, now):
    return [col._search_sync(q[None, :], k, None, None, None, now)[0] for q in qs]


async def test_the_fast_path_answers_as_the_general_path(col, clock):
    qs = col.index.prepare(np.random.default_rng(8).standard_normal((30, DIM)))
    now = clock()
    for k in (1, 10, 50):
        want = general(col, qs, k, now)
        assert col._plain_search(qs, k, now) == want  # several rows in one call
        assert [col._plain_search(q[None, :], k, now)[0] for q in qs] == want
    assert col._superposed  # the Born-ranked branch of the fast path ran


async def test_without_superposed_records_the_fast_path_builds_its_own_hits(col, clock):
    for j in range(5):
        await col.delete([f"s{j}"])
    assert not col._superposed
    qs = col.index.prepare(np.random.default_rng(9).standard_normal((30, DIM)))
    now = clock()
    got = col._plain_search(qs, 10, now)
    assert got == general(col, qs, 10, now)
    ids = {h.id for row in got for h in row}
    deleted = {f"r{n}" for n in range(0, 300, 7)} - {f"r{n}" for n in range(1, 60, 3)}
    assert ids and not any(i.startswith("t") for i in ids) and not ids & deleted
    hit = got[0][0]
    hit.metadata["mutated"] = True  # a hit's metadata is the caller's copy, not the summary
    assert col._plain_search(qs[:1], 10, now)[0][0].metadata.get("mutated") is None
    # and query() takes this path: it agrees with the general path forced by an explicit ef
    assert [await col.query(q, top_k=10) for q in qs] == [await col.query(q, top_k=10, ef=64) for q in qs]


async def test_queued_rows_are_checked_and_scaled_on_the_reader_threads(db, monkeypatch):
    """Concurrent queries reach the search queue unchecked beyond their shape: each bad row
    fails its own caller only, and the good ones get the very hits a lone query gets."""
    c = await db.create_collection("queued", dim=DIM)
    rng = np.random.default_rng(10)
    await c.upsert([f"r{i}" for i in range(300)], rng.standard_normal((300, DIM)))
    qs = (rng.standard_normal((48, DIM)) * rng.uniform(0.1, 50.0, (48, 1))).astype(np.float32)
    bad = {25: np.nan, 33: 0.0, 41: np.inf}
    for i, value in bad.items():
        qs[i] = 0.0
        qs[i, 3] = value
    alone = [await c.query(q) if i not in bad else None for i, q in enumerate(qs)]
    chunks: list[np.ndarray] = []
    search = c._search_queued

    def spy(rows, k):
        chunks.append(rows.copy())
        return search(rows, k)
    monkeypatch.setattr(c._queue, "_search", spy)
    together = await asyncio.gather(*(c.query(q) for q in qs), return_exceptions=True)
    for i, got in enumerate(together):
        if i in bad:
            assert isinstance(got, InvalidArgument) and got.code == "invalid_vector", got
        else:
            assert got == alone[i]
    queued = np.concatenate(chunks)
    assert max(len(ch) for ch in chunks) > 1  # searched as chunks
    for i in bad:  # and every bad row met its verdict on a reader thread, in a chunk
        assert any(np.array_equal(row, qs[i], equal_nan=True) for row in queued)
    assert any(len(ch) > 1 and any(np.array_equal(r, qs[i], equal_nan=True) for r in ch for i in bad) for ch in chunks)
