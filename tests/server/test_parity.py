"""The parity contract: one suite, run on the embedded Database and on AsyncClient -> server.

Every test takes `db`, which is either `qstore.Database` (embedded) or `qstore_client.AsyncClient`
talking to a real `python -m qstore_server` subprocess, in msgpack or in JSON. All must pass
identically; the last test also runs one seeded workload in every mode and compares the results
value for value.
"""
from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

import qstore
from qstore_client import (
    AlreadyExists,
    AsyncClient,
    Hit,
    InvalidArgument,
    Measurement,
    NotFound,
    Page,
    QStoreError,
    Record,
)

DIM = 8


@pytest.fixture(params=["embedded", "remote", "remote-json"])
async def db(request: pytest.FixtureRequest, tmp_path, server):
    if request.param == "embedded":
        database = await qstore.Database.open(str(tmp_path / "db"))
        yield database
        await database.close()
    else:
        async with AsyncClient(server.url, api_key=server.key, use_json=request.param == "remote-json") as client:
            yield client


def unit_rows(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ids_of(hits: list[Hit]) -> list[str]:
    return [h.id for h in hits]


async def filled(db: Any, name: str, n: int = 40, index: dict | None = None):
    """A cosine collection of n unit vectors with varied metadata."""
    col = await db.create_collection(name, dim=DIM, index=index or {"type": "flat"})
    x = unit_rows(n)
    ids = [f"r{i:03d}" for i in range(n)]
    meta = [{"i": i, "color": ["red", "green", "blue"][i % 3], "tags": ["even" if i % 2 == 0 else "odd"],
             **({"rare": True} if i % 10 == 0 else {})} for i in range(n)]
    await col.upsert(ids, x, metadata=meta)
    return col, ids, x, meta


# ------------------------------------------------------------------ collections


async def test_collection_lifecycle(db, name):
    col = await db.create_collection(name, dim=DIM, metric="l2", index={"type": "flat"})
    assert (col.name, col.dim, col.metric) == (name, DIM, "l2")
    assert name in await db.list_collections()
    again = await db.collection(name)
    assert (again.name, again.dim, again.metric) == (name, DIM, "l2")
    info = await again.info()
    assert info["name"] == name and info["dim"] == DIM and info["count"] == 0 and info["index"]["type"] == "flat"
    with pytest.raises(AlreadyExists) as exc:
        await db.create_collection(name, dim=DIM)
    assert exc.value.code == "collection_exists"
    await db.drop_collection(name)
    assert name not in await db.list_collections()
    with pytest.raises(NotFound) as exc:
        await db.collection(name)
    assert exc.value.code == "collection_not_found"


async def test_upsert_get_delete_count(db, name):
    col, ids, x, meta = await filled(db, name, n=10)
    assert await col.count() == 10
    recs = await col.get(["r003", "missing", "r000"])
    assert recs[1] is None
    r3 = recs[0]
    assert isinstance(r3, Record) and r3.id == "r003" and r3.version == 1 and r3.expires_at is None
    assert r3.vector.dtype == np.float32 and np.array_equal(r3.vector, x[3])
    assert r3.metadata == meta[3]
    assert len(r3.branches) == 1 and r3.branches[0].context is None and r3.branches[0].amplitude == 1
    # Upsert replaces vector and metadata and bumps the version.
    await col.upsert(["r003"], x[4:5] * 2, metadata=[{"new": "yes"}])
    (r3,) = await col.get(["r003"])
    assert r3.version == 2 and r3.metadata == {"new": "yes"} and np.allclose(r3.vector, x[4] * 2)
    assert await col.delete(["r003", "r005", "missing"]) == 2
    assert await col.count() == 8
    assert await col.get(["r003", "r005"]) == [None, None]


async def test_query_ranks_like_exact_search(db, name):
    col, ids, x, _ = await filled(db, name)
    q = unit_rows(1, seed=7)[0]
    hits = await col.query(q, top_k=5)
    expected = np.argsort(-(x @ q))[:5]
    assert ids_of(hits) == [ids[i] for i in expected]
    assert all(isinstance(h, Hit) for h in hits)
    assert np.allclose([h.score for h in hits], (x @ q)[expected], atol=1e-5)
    assert hits[0].metadata == {"i": int(expected[0]), "color": ["red", "green", "blue"][expected[0] % 3],
                                "tags": ["even" if expected[0] % 2 == 0 else "odd"],
                                **({"rare": True} if expected[0] % 10 == 0 else {})}


FILTERS = [
    ({"color": "red"}, lambda m: m["color"] == "red"),
    ({"i": {"$gte": 10, "$lt": 20}}, lambda m: 10 <= m["i"] < 20),
    ({"color": {"$in": ["red", "blue"]}}, lambda m: m["color"] in ("red", "blue")),
    ({"color": {"$nin": ["red"]}, "tags": "odd"}, lambda m: m["color"] != "red" and "odd" in m["tags"]),
    ({"$or": [{"i": {"$lt": 3}}, {"i": {"$gt": 36}}]}, lambda m: m["i"] < 3 or m["i"] > 36),
    ({"$not": {"color": "green"}}, lambda m: m["color"] != "green"),
    ({"rare": {"$exists": True}}, lambda m: "rare" in m),
    ({"$and": [{"i": {"$ne": 0}}, {"rare": {"$exists": True}}]}, lambda m: m["i"] != 0 and "rare" in m),
]


@pytest.mark.parametrize("flt,pred", FILTERS, ids=[str(f) for f, _ in FILTERS])
async def test_filtered_query_and_scroll(db, name, flt, pred):
    col, ids, x, meta = await filled(db, name)
    wanted = {ids[i] for i in range(len(ids)) if pred(meta[i])}
    hits = await col.query(unit_rows(1, seed=3)[0], top_k=len(ids), filter=flt)
    assert set(ids_of(hits)) == wanted
    page = await col.scroll(limit=100, filter=flt)
    assert [r.id for r in page.records] == sorted(wanted) and page.next_cursor is None


async def test_query_batch(db, name):
    col, ids, x, _ = await filled(db, name)
    qs = unit_rows(3, seed=11)
    batches = await col.query_batch(qs, top_k=4, filter={"color": "blue"})
    assert len(batches) == 3
    for q, hits in zip(qs, batches):
        single = await col.query(q, top_k=4, filter={"color": "blue"})
        assert ids_of(hits) == ids_of(single)


async def test_scroll_pages_through_everything_once(db, name):
    col, ids, _, _ = await filled(db, name, n=23)
    seen, cursor = [], None
    while True:
        page = await col.scroll(limit=7, cursor=cursor)
        assert isinstance(page, Page) and len(page.records) <= 7
        seen += [r.id for r in page.records]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(ids)


async def test_superpose_query_and_measure(db, name):
    col = await db.create_collection(name, dim=DIM, index={"type": "flat"})
    a, b = unit_rows(2, seed=5)
    await col.superpose("cat", [(a, "animal", 0.6), (b, "unix", 0.8j)], metadata={"kind": "word"})
    (rec,) = await col.get(["cat"])
    assert [br.context for br in rec.branches] == ["animal", "unix"]
    assert np.isclose(rec.branches[0].amplitude, 0.6) and np.isclose(rec.branches[1].amplitude, 0.8j)
    assert np.array_equal(rec.vector, b)  # the most probable branch
    # With a context only that branch counts; without one, the Born-weighted mixture.
    (hit,) = await col.query(a, top_k=1, context="animal")
    assert hit.id == "cat" and np.isclose(hit.score, 1.0, atol=1e-5)
    (hit,) = await col.query(a, top_k=1)
    assert np.isclose(hit.score, 0.36 * 1.0 + 0.64 * float(a @ b), atol=1e-5)
    assert await col.query(a, top_k=1, context="nowhere") == []
    m = await col.measure("cat", context="unix", seed=1)
    assert isinstance(m, Measurement) and m.context == "unix" and m.probability == 1.0
    assert np.array_equal(m.vector, b)
    draws = [(await col.measure("cat", seed=s)).context for s in range(200)]
    assert 0.5 < draws.count("unix") / 200 < 0.8  # |0.8j|² = 0.64
    m = await col.measure("cat", collapse=True, seed=3)
    (rec,) = await col.get(["cat"])
    assert len(rec.branches) == 1 and rec.branches[0].context == m.context and rec.version == 2
    with pytest.raises(NotFound) as exc:
        await col.measure("cat", context="nowhere" if m.context == "unix" else "unix")
    assert exc.value.code == "context_not_found"


async def test_entangle_update_correlation(db, name):
    col = await db.create_collection(name, dim=DIM, metric="l2", index={"type": "flat"})
    x = unit_rows(3, seed=9)
    await col.upsert(["a", "b", "c"], x)
    await col.entangle("pair", ["a", "b"], strength=0.5)
    assert await col.correlation("a", "b") == 0.5
    assert await col.correlation("a", "c") == 0.0
    delta = np.full(DIM, 0.25, dtype=np.float32)
    await col.update("a", x[0] + delta)
    a, b, c = await col.get(["a", "b", "c"])
    assert np.allclose(a.vector, x[0] + delta) and np.allclose(b.vector, x[1] + 0.5 * delta)
    assert np.array_equal(c.vector, x[2])
    with pytest.raises(InvalidArgument) as exc:
        await col.entangle("bad", ["a", "c"], strength=1.5)
    assert exc.value.code == "invalid_strength"
    await col.entangle("pair", ["c"], strength=0.5)  # joins the group at its strength
    await col.entangle("pair2", ["a", "c"], strength=0.5)
    assert await col.correlation("a", "c") == 0.75 and await col.correlation("a", "a") == 1.0
    await col.disentangle("pair", ["c"])
    assert await col.correlation("a", "c") == 0.5 and await col.correlation("a", "b") == 0.5
    await col.disentangle("pair")
    assert await col.correlation("a", "b") == 0.0
    with pytest.raises(NotFound) as exc:
        await col.disentangle("pair")
    assert exc.value.code == "not_found"


async def test_states(db, name):
    psi = np.zeros(8, dtype=np.complex128)
    psi[0], psi[7] = 1 / np.sqrt(2), 1j / np.sqrt(2)  # GHZ with a phase
    await db.put_state(name, psi)
    got = await db.get_state(name)
    assert got.dtype == np.complex128 and np.array_equal(got, psi)
    counts = await db.measure_state(name, shots=2000, seed=4)
    assert set(counts) == {"000", "111"} and sum(counts.values()) == 2000
    assert counts == await db.measure_state(name, shots=2000, seed=4)
    assert set(await db.measure_state(name, shots=100, qubits=[0], seed=1)) <= {"0", "1"}
    await db.delete_state(name)
    with pytest.raises(NotFound):
        await db.get_state(name)
    with pytest.raises(InvalidArgument) as exc:
        await db.put_state(name, np.ones(3, dtype=np.complex128))
    assert exc.value.code == "invalid_state"


async def test_import_dataset(db, name):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((30, 4))
    y = np.arange(30) % 3
    col = await db.import_dataset(name, X, y)
    assert (col.name, col.dim) == (name, 4)
    assert await col.count() == 30
    page = await col.scroll(limit=30)
    assert [r.metadata["label"] for r in page.records] == y.tolist()
    assert np.allclose(np.stack([r.vector for r in page.records]), X.astype(np.float32))
    assert name in await db.list_datasets()
    info = await db.dataset_info(name)
    assert (info["n"], info["n_features"], info["classes"]) == (30, 4, [0, 1, 2])
    X_back, y_back = await db.load_dataset(name)
    assert X_back.dtype == np.float64 and np.array_equal(X_back, X.astype(np.float32).astype(np.float64))
    assert y_back.tolist() == y.tolist()
    with pytest.raises(InvalidArgument) as exc:
        await db.import_dataset(name + "x", X, y[:5])
    assert exc.value.code == "invalid_labels"


async def test_checkpoints(db, name):
    odd = await db.save_checkpoint({"run": name + "-odd"}, id=f"{name}/ü ?#..")
    assert (await db.load_checkpoint(odd))["id"] == f"{name}/ü ?#.."
    await db.delete_checkpoint(odd)
    doc = {"run": name, "epoch": 3, "params": np.linspace(0, 1, 6).reshape(2, 3), "metrics": {"loss": 0.25},
           "config_hash": "abc"}
    cid = await db.save_checkpoint(doc)
    loaded = await db.load_checkpoint(cid)
    assert loaded["epoch"] == 3 and loaded["metrics"] == {"loss": 0.25} and loaded["id"] == cid
    assert isinstance(loaded["params"], np.ndarray) and np.array_equal(loaded["params"], doc["params"])
    summaries = await db.list_checkpoints(run=name)
    assert [s["id"] for s in summaries] == [cid] and "params" not in summaries[0]
    await db.delete_checkpoint(cid)
    assert await db.list_checkpoints(run=name) == []
    with pytest.raises(NotFound):
        await db.load_checkpoint(cid)


async def test_coherence_time_expires_records(db, name):
    col = await db.create_collection(name, dim=DIM, index={"type": "flat"})
    x = unit_rows(2)
    await col.upsert(["short"], x[:1], coherence_time=0.3)
    await col.upsert(["long"], x[1:])
    (rec,) = await col.get(["short"])
    assert rec is not None and rec.expires_at is not None
    await asyncio.sleep(0.5)
    assert await col.get(["short", "long"]) != [None, None]
    assert (await col.get(["short"]))[0] is None
    assert ids_of(await col.query(x[0], top_k=2)) == ["long"]
    assert await col.count() == 1
    await db.sweep()
    assert await col.count() == 1 and (await col.info())["count"] == 1


# ------------------------------------------------------------------ errors

def bad_calls(name: str) -> list[tuple[str, Any, type[QStoreError], str]]:
    """(label, call(db, col), class, code) for invalid calls that must fail the same way in both modes."""
    v = unit_rows(1)[0]
    return [
        ("unknown collection", lambda db, col: db.collection(name + "-nope"), NotFound, "collection_not_found"),
        ("bad collection name", lambda db, col: db.create_collection("has space", dim=4), InvalidArgument,
         "invalid_name"),
        ("bad metric", lambda db, col: db.create_collection(name + "m", dim=4, metric="hamming"), InvalidArgument,
         "invalid_metric"),
        ("wrong dimension", lambda db, col: col.upsert(["x"], np.ones((1, DIM + 1))), InvalidArgument,
         "dimension_mismatch"),
        ("rows vs ids", lambda db, col: col.upsert(["x", "y"], np.ones((1, DIM))), InvalidArgument,
         "dimension_mismatch"),
        ("NaN", lambda db, col: col.upsert(["x"], np.full((1, DIM), np.nan)), InvalidArgument, "invalid_vector"),
        ("Inf in query", lambda db, col: col.query(np.full(DIM, np.inf)), InvalidArgument, "invalid_vector"),
        ("zero vector, cosine", lambda db, col: col.upsert(["x"], np.zeros((1, DIM))), InvalidArgument,
         "invalid_vector"),
        ("empty id", lambda db, col: col.upsert([""], v[None]), InvalidArgument, "invalid_id"),
        ("duplicate ids", lambda db, col: col.upsert(["x", "x"], np.stack([v, v])), InvalidArgument, "invalid_id"),
        ("metadata not a list", lambda db, col: col.upsert(["x"], v[None], metadata={"a": 1}), InvalidArgument,
         "invalid_metadata"),
        ("metadata value", lambda db, col: col.upsert(["x"], v[None], metadata=[{"a": {"b": 1}}]),
         InvalidArgument, "invalid_metadata"),
        ("bad filter op", lambda db, col: col.query(v, filter={"i": {"$regex": "x"}}), InvalidArgument,
         "invalid_filter"),
        ("bad filter shape", lambda db, col: col.query(v, filter={"$and": {"i": 1}}), InvalidArgument,
         "invalid_filter"),
        ("top_k zero", lambda db, col: col.query(v, top_k=0), InvalidArgument, "invalid_top_k"),
        ("top_k float", lambda db, col: col.query(v, top_k=2.5), InvalidArgument, "invalid_top_k"),
        ("measure unknown id", lambda db, col: col.measure("nope"), NotFound, "not_found"),
        ("update unknown id", lambda db, col: col.update("nope", v), NotFound, "not_found"),
        ("zero amplitudes", lambda db, col: col.superpose("s", [(v, "a", 0.0)]), InvalidArgument,
         "invalid_amplitudes"),
        ("bad coherence", lambda db, col: col.upsert(["x"], v[None], coherence_time=-1), InvalidArgument,
         "invalid_coherence_time"),
        ("unknown state", lambda db, col: db.get_state(name + "-nostate"), NotFound, "not_found"),
        ("unknown checkpoint", lambda db, col: db.load_checkpoint(name + "-nockpt"), NotFound, "not_found"),
    ]


BAD_LABELS = [label for label, *_ in bad_calls("x")]


@pytest.mark.parametrize("label", BAD_LABELS)
async def test_errors_have_the_same_class_and_code(db, name, label):
    col, *_ = await filled(db, name, n=5)
    (call, cls, code), = [(c, k, d) for lab, c, k, d in bad_calls(name) if lab == label]
    with pytest.raises(QStoreError) as exc:
        await call(db, col)
    assert (type(exc.value), exc.value.code) == (cls, code), str(exc.value)
    assert await col.count() == 5  # nothing changed


# ------------------------------------------------------------------ cross-mode equality

async def workload(db: Any, name: str) -> list[Any]:
    """A seeded workload touching every result type; its output must not depend on the mode."""
    out: list[Any] = []
    col, ids, x, _ = await filled(db, name, n=60)
    q = unit_rows(4, seed=21)
    out.append([(h.id, h.score, h.metadata) for h in await col.query(q[0], top_k=7)])
    batches = await col.query_batch(q, top_k=3, filter={"i": {"$lt": 30}})
    out.append([[(h.id, h.score) for h in hits] for hits in batches])
    out.append(await col.build_regions(n_regions=4, seed=1))
    out.append([(h.id, h.score) for h in await col.query(q[1], top_k=6, tunneling=2.0, seed=5)])
    await col.superpose("sup", [(x[0], "a", 1.0), (x[1], "b", 1.0 + 1.0j), (x[2], "a", 0.5)])
    out.append([(h.id, h.score) for h in await col.query(x[1], top_k=3)])
    out.append([(h.id, h.score) for h in await col.query(x[0], top_k=3, context="a")])
    for seed in range(5):
        m = await col.measure("sup", seed=seed)
        out.append((m.context, m.vector.tolist(), m.probability))
    m = await col.measure("sup", context="a", collapse=True, seed=7)
    out.append((m.context, m.vector.tolist(), m.probability))
    await col.entangle("g", ["r001", "r002"], strength=0.3)
    await col.update("r001", x[3])
    out.append([(r.id, r.vector.tolist(), r.version) for r in await col.get(["r001", "r002", "sup"])])
    out.append(await col.correlation("r002", "r001"))
    await col.disentangle("g", ["r002"])
    out.append(await col.correlation("r002", "r001"))
    page = await col.scroll(limit=9, filter={"color": "green"})
    out.append(([r.id for r in page.records], page.next_cursor))
    psi = np.exp(1j * np.arange(16)) / 4
    await db.put_state(name, psi)
    out.append(await db.measure_state(name, shots=500, qubits=[1, 3], seed=9))
    for label, call, *_ in bad_calls(name):
        try:
            await call(db, col)
            out.append((label, "no error"))
        except QStoreError as exc:
            out.append((label, type(exc).__name__, exc.code))
    out.append(await col.count())
    return out


@pytest.mark.parametrize("use_json", [False, True], ids=["msgpack", "json"])
async def test_seeded_workload_is_identical_across_modes(tmp_path, server, name, use_json):
    async with await qstore.Database.open(str(tmp_path / "embedded")) as embedded:
        local = await workload(embedded, name)
    async with AsyncClient(server.url, api_key=server.key, use_json=use_json) as client:
        remote = await workload(client, name)
    assert len(local) == len(remote)
    for i, (a, b) in enumerate(zip(local, remote)):
        assert a == b, f"step {i} differs:\nembedded {a}\nremote   {b}"
