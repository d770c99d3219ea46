"""Bad input over the wire: a 4xx with a stable code, and nothing changes.

Raw HTTP against a real server started with small limits, so each malformed request can be
built by hand exactly as a buggy or hostile client would send it.
"""
from __future__ import annotations

import json
import struct

import aiohttp
import msgpack
import numpy as np
import pytest

from qstore_client import AsyncClient

DIM = 4
LIMITS = ("--max-body-bytes", "20000", "--max-batch", "50", "--max-top-k", "20", "--max-dim", "64")
MP = "application/msgpack"
JS = "application/json"


WRITE_KEY, READ_KEY = "wire-write-key", "wire-read-key"


@pytest.fixture(scope="module")
def limited(tmp_path_factory, server_process):
    srv = server_process(tmp_path_factory.mktemp("limited") / "data", *LIMITS, write_key=WRITE_KEY, read_key=READ_KEY)
    yield srv
    assert srv.stop() == 0


@pytest.fixture
async def http(limited):
    async with aiohttp.ClientSession(limited.url) as session:
        yield session


@pytest.fixture
async def col(limited, name):
    """A collection with 5 records; after each bad request the test checks they are untouched."""
    async with AsyncClient(limited.url, api_key=WRITE_KEY) as client:
        c = await client.create_collection(name, dim=DIM, index={"type": "flat"})
        await c.upsert([f"k{i}" for i in range(5)], np.eye(5, DIM, dtype=np.float32) + 0.5,
                       metadata=[{"i": i} for i in range(5)])
        before = await c.get([f"k{i}" for i in range(5)])
        yield c
        assert await c.count() == 5
        after = await c.get([f"k{i}" for i in range(5)])
        assert [(r.version, r.metadata, r.vector.tolist()) for r in after] == \
               [(r.version, r.metadata, r.vector.tolist()) for r in before]


def tensor(rows: np.ndarray) -> dict:
    rows = np.asarray(rows, dtype="<f4")
    return {"dtype": "f32", "shape": list(rows.shape), "data": rows.tobytes()}


def auth(key: str | None = WRITE_KEY, ctype: str | None = MP) -> dict[str, str]:
    headers = {"Accept": MP}
    if ctype:
        headers["Content-Type"] = ctype
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


async def call(http: aiohttp.ClientSession, method: str, path: str, body: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with http.request(method, path, data=body, headers=headers if headers is not None else auth()) as resp:
        raw = await resp.read()
        parsed = json.loads(raw) if resp.content_type == JS else msgpack.unpackb(raw)
        return resp.status, parsed


def upsert_body(**override) -> dict:
    body = {"ids": ["n1"], "vectors": tensor(np.ones((1, DIM)))}
    body.update(override)
    return {k: v for k, v in body.items() if v is not None}


CASES = [
    # label, content type, raw body builder, path suffix, status, code
    ("malformed msgpack", MP, lambda: b"\x85\xa3ids\xc1\xc1", "upsert", 400, "malformed_body"),
    ("truncated msgpack", MP, lambda: msgpack.packb(upsert_body())[:-7], "upsert", 400, "malformed_body"),
    ("malformed json", JS, lambda: b'{"ids": ["n1"], "vectors": [[1,2,3,4]]', "upsert", 400, "malformed_body"),
    ("body not a map", MP, lambda: msgpack.packb([1, 2, 3]), "upsert", 400, "malformed_body"),
    ("wrong content type", "text/plain", lambda: b'{"ids": ["n1"]}', "upsert", 415, "unsupported_media_type"),
    ("form content type", "application/x-www-form-urlencoded", lambda: b"ids=n1", "upsert", 415,
     "unsupported_media_type"),
    ("missing field", MP, lambda: msgpack.packb(upsert_body(vectors=None)), "upsert", 400, "missing_field"),
    ("unknown field", MP, lambda: msgpack.packb(upsert_body(vectorz=[1])), "upsert", 400, "unknown_field"),
    ("ids not a list", MP, lambda: msgpack.packb(upsert_body(ids="n1")), "upsert", 400, "invalid_id"),
    ("wrong dimension", MP, lambda: msgpack.packb(upsert_body(vectors=tensor(np.ones((1, DIM + 1))))), "upsert",
     400, "dimension_mismatch"),
    ("3-D vectors", MP, lambda: msgpack.packb(upsert_body(vectors=tensor(np.ones((1, 1, DIM))))), "upsert", 400,
     "dimension_mismatch"),
    ("tensor bytes short", MP, lambda: msgpack.packb(upsert_body(
        vectors={"dtype": "f32", "shape": [1, DIM], "data": b"\0" * (4 * DIM - 1)})), "upsert", 400,
     "invalid_vector"),
    ("tensor wrong dtype", MP, lambda: msgpack.packb(upsert_body(
        vectors={"dtype": "f64", "shape": [1, DIM], "data": b"\0" * (8 * DIM)})), "upsert", 400, "invalid_vector"),
    ("tensor huge shape", MP, lambda: msgpack.packb(upsert_body(
        vectors={"dtype": "f32", "shape": [2**40, 2**20], "data": b""})), "upsert", 400, "invalid_vector"),
    ("NaN bytes", MP, lambda: msgpack.packb(upsert_body(
        vectors={"dtype": "f32", "shape": [1, DIM], "data": struct.pack("<4f", 1, float("nan"), 0, 0)})),
     "upsert", 400, "invalid_vector"),
    ("Inf in query", MP, lambda: msgpack.packb({"vector": [1.0, float("inf"), 0.0, 0.0]}), "query", 400,
     "invalid_vector"),
    ("NaN token in JSON", JS, lambda: b'{"ids": ["n1"], "vectors": [[1, NaN, 0, 0]]}', "upsert", 400,
     "invalid_vector"),
    ("strings as vector", JS, lambda: b'{"ids": ["n1"], "vectors": [["a", "b", "c", "d"]]}', "upsert", 400,
     "invalid_vector"),
    ("body over limit", MP, lambda: msgpack.packb(upsert_body(pad="x" * 30000)), "upsert", 413, "limit_exceeded"),
    ("batch over limit", MP, lambda: msgpack.packb(upsert_body(ids=[f"b{i}" for i in range(51)],
                                                               vectors=tensor(np.ones((51, DIM))))), "upsert",
     413, "limit_exceeded"),
    ("dimension over limit", MP, lambda: msgpack.packb({"vector": tensor(np.ones(65))}), "query", 413,
     "limit_exceeded"),
    ("top_k over limit", MP, lambda: msgpack.packb({"vector": tensor(np.ones(DIM)), "top_k": 21}), "query", 413,
     "limit_exceeded"),
    ("top_k not an int", MP, lambda: msgpack.packb({"vector": tensor(np.ones(DIM)), "top_k": "5"}), "query", 400,
     "invalid_top_k"),
    ("bad filter operator", MP, lambda: msgpack.packb({"vector": tensor(np.ones(DIM)), "filter": {"i": {"$near": 1}}}),
     "query", 400, "invalid_filter"),
    ("filter not a map", MP, lambda: msgpack.packb({"vector": tensor(np.ones(DIM)), "filter": [1]}), "query", 400,
     "invalid_filter"),
    ("bad metadata", MP, lambda: msgpack.packb(upsert_body(metadata=[{"a": {"deep": 1}}])), "upsert", 400,
     "invalid_metadata"),
    ("unknown id", MP, lambda: msgpack.packb({"id": "ghost"}), "measure", 404, "not_found"),
    ("unknown id in update", MP, lambda: msgpack.packb({"id": "ghost", "vector": tensor(np.ones(DIM))}), "update",
     404, "not_found"),
]


@pytest.mark.parametrize("label,ctype,body,op,status,code", CASES, ids=[c[0] for c in CASES])
async def test_bad_request_is_refused_and_changes_nothing(http, col, label, ctype, body, op, status, code):
    got_status, reply = await call(http, "POST", f"/v1/collections/{col.name}/{op}", body(), auth(ctype=ctype))
    assert (got_status, reply["error"]["code"]) == (status, code), reply
    assert reply["error"]["message"]


async def test_unknown_collection(http, col):
    status, reply = await call(http, "POST", "/v1/collections/no-such/upsert", msgpack.packb(upsert_body()))
    assert (status, reply["error"]["code"]) == (404, "collection_not_found")
    status, reply = await call(http, "GET", "/v1/collections/no-such/count")
    assert (status, reply["error"]["code"]) == (404, "collection_not_found")


async def test_unknown_route_and_method(http, col):
    status, reply = await call(http, "GET", "/v1/nothing-here")
    assert (status, reply["error"]["code"]) == (404, "not_found")
    status, reply = await call(http, "PATCH", f"/v1/collections/{col.name}")
    assert (status, reply["error"]["code"]) == (405, "method_not_allowed")


@pytest.mark.parametrize("headers", [
    {"Content-Type": MP},
    {"Content-Type": MP, "Authorization": "Bearer wrong-key"},
    {"Content-Type": MP, "Authorization": f"Basic {WRITE_KEY}"},
    {"Content-Type": MP, "Authorization": f"Bearer {WRITE_KEY}x"},
    {"Content-Type": MP, "Authorization": "Bearer "},
], ids=["missing", "wrong", "not bearer", "prefix of a key", "empty"])
async def test_bad_api_key_is_401(http, col, headers):
    for method, path, body in [("POST", f"/v1/collections/{col.name}/upsert", msgpack.packb(upsert_body())),
                               ("GET", f"/v1/collections/{col.name}/count", None),
                               ("GET", "/v1/metrics", None)]:
        async with http.request(method, path, data=body, headers={**headers, "Accept": MP}) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert msgpack.unpackb(await resp.read())["error"]["code"] == "unauthorized"


async def test_read_only_key_reads_but_cannot_write(http, col):
    ro = auth(key=READ_KEY)
    status, reply = await call(http, "GET", f"/v1/collections/{col.name}/count", headers=ro)
    assert (status, reply["result"]) == (200, 5)
    status, reply = await call(http, "POST", f"/v1/collections/{col.name}/query",
                               msgpack.packb({"vector": tensor(np.ones(DIM)), "top_k": 2}), ro)
    assert status == 200 and len(reply["result"]) == 2
    status, reply = await call(http, "POST", f"/v1/collections/{col.name}/measure", msgpack.packb({"id": "k1"}), ro)
    assert status == 200
    writes = [
        ("POST", f"/v1/collections/{col.name}/upsert", msgpack.packb(upsert_body())),
        ("POST", f"/v1/collections/{col.name}/delete", msgpack.packb({"ids": ["k1"]})),
        ("POST", f"/v1/collections/{col.name}/measure", msgpack.packb({"id": "k1", "collapse": True})),
        ("DELETE", f"/v1/collections/{col.name}", None),
        ("POST", "/v1/collections", msgpack.packb({"name": "ro-made", "dim": 4})),
        ("POST", "/v1/states/put", msgpack.packb({"id": "s", "statevector": [[1.0, 0.0], [0.0, 0.0]]})),
        ("POST", "/v1/jobs", msgpack.packb({"kind": "copy_collection", "params": {"source": col.name,
                                                                                  "target": "ro-copy"}})),
    ]
    for method, path, body in writes:
        status, reply = await call(http, method, path, body, ro)
        assert (status, reply["error"]["code"]) == (403, "forbidden"), path
    async with AsyncClient(http._base_url.human_repr(), api_key=READ_KEY) as client:
        assert "ro-made" not in await client.list_collections()
        ro_col = await client.collection(col.name)
        with pytest.raises(Exception) as exc:
            await ro_col.upsert(["z"], np.ones((1, DIM)))
        assert exc.value.code == "forbidden"


async def test_health_needs_no_key_but_everything_else_does(http):
    async with http.get("/v1/health") as resp:
        assert resp.status == 200
    async with http.get("/v1/collections") as resp:
        assert resp.status == 401


async def test_json_for_curl(http, col):
    """curl-style JSON in, JSON out, plain lists for vectors."""
    body = json.dumps({"vector": [1.5, 0.5, 0.5, 0.5], "top_k": 1}).encode()
    headers = {"Content-Type": JS, "Authorization": f"Bearer {WRITE_KEY}"}
    async with http.post(f"/v1/collections/{col.name}/query", data=body, headers=headers) as resp:
        assert resp.status == 200 and resp.content_type == JS
        assert (await resp.json())["result"][0]["id"] == "k0"
    async with http.post(f"/v1/collections/{col.name}/get", data=b'{"ids": ["k0"]}', headers=headers) as resp:
        rec = (await resp.json())["result"][0]
        assert rec["vector"] == [1.5, 0.5, 0.5, 0.5] and rec["branches"][0]["amplitude"] == [1.0, 0.0]
    async with http.get(f"/v1/collections/{col.name}/count", headers={**auth(), "Accept": JS}) as resp:
        assert resp.content_type == JS and (await resp.json()) == {"result": 5}
    async with http.get(f"/v1/collections/{col.name}/count", headers=auth()) as resp:
        assert resp.content_type == MP and msgpack.unpackb(await resp.read()) == {"result": 5}


async def test_chunked_body_over_limit(http, col):
    """Without Content-Length the limit is enforced while reading."""
    async def chunks():
        for _ in range(30):
            yield b"\x00" * 1000

    async with http.post(f"/v1/collections/{col.name}/upsert", data=chunks(), headers=auth()) as resp:
        assert resp.status == 413
        assert msgpack.unpackb(await resp.read())["error"]["code"] == "limit_exceeded"
