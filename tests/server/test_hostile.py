"""Hostile requests over the wire (issue 12): each is a 4xx with a code, the server keeps
answering, and nothing changes.

The servers run under a memory rlimit (tests/servers.py MEMORY_LIMIT), so a request that
makes the server allocate by a number the caller chose fails the test with a 500 (MemoryError)
instead of exhausting the machine.
"""
from __future__ import annotations

import asyncio
import json
import logging
import socket
from pathlib import Path

import aiohttp
import msgpack
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from qstore.federated import RoundTask
from qstore.training import VQC
from qstore.training.data import DataSummary, FeatureStats
from qstore_client import AsyncClient, NotFound
from qstore_client.protocol import OPS
from qstore_server import ServerConfig, create_app
from qstore_server.auth import allows, expand
from qstore_server.cli import serve
from tests.server import scope_table
from tests.servers import MEMORY_LIMIT

MP, JS = "application/msgpack", "application/json"
DIM = 4
KEYS = {"k-read": "read", "k-write": "write", "k-admin": "admin", "k-fed": "federated"}


@pytest.fixture(scope="module")
def servers(tmp_path_factory, server_process):
    """A keyed server (2 job slots), and a keyless one whose jobs have a 3 s deadline; booted in parallel."""
    keyed = server_process(tmp_path_factory.mktemp("hostile") / "data", "--max-jobs", "2",
                           keys=KEYS, memory_limit=MEMORY_LIMIT, wait=False)
    keyless = server_process(tmp_path_factory.mktemp("keyless") / "data", "--max-job-seconds", "3",
                             memory_limit=MEMORY_LIMIT, wait=False)
    keyed.wait_healthy()
    keyless.wait_healthy()
    yield keyed, keyless
    assert keyed.stop() == 0, keyed.log.read_text()
    assert keyless.stop() == 0, keyless.log.read_text()


@pytest.fixture(scope="module")
def keyed(servers):
    return servers[0]


@pytest.fixture(scope="module")
def keyless(servers):
    return servers[1]


async def state_of(url: str, key: str | None) -> dict:
    """Everything a test could have changed: collections with their records, states, datasets, checkpoints."""
    async with AsyncClient(url, api_key=key) as client:
        out: dict = {"collections": {}, "datasets": await client.list_datasets(),
                     "checkpoints": [c["id"] for c in await client.list_checkpoints()]}
        for name in await client.list_collections():
            col = await client.collection(name)
            page = await col.scroll(limit=1000)
            out["collections"][name] = [(r.id, r.version, r.vector.tolist(), r.metadata) for r in page.records]
        try:
            out["state"] = (await client.get_state("psi")).tolist()
        except NotFound:
            out["state"] = None
        return out


@pytest.fixture(scope="module")
def seeded(keyed):
    async def seed() -> None:
        async with AsyncClient(keyed.url, api_key="k-admin") as client:
            col = await client.create_collection("base", dim=DIM, index={"type": "hnsw"})
            await col.upsert([f"r{i}" for i in range(20)], np.random.default_rng(0).standard_normal((20, DIM)),
                             metadata=[{"i": i} for i in range(20)])
            await client.put_state("psi", np.array([0.6, 0.8j]))
    asyncio.run(seed())
    return keyed


@pytest.fixture
async def unchanged(seeded):
    """Yields the keyed server; afterwards checks it still answers /v1/health and nothing changed."""
    before = await state_of(seeded.url, "k-admin")
    yield seeded
    async with aiohttp.ClientSession() as http:
        async with http.get(seeded.url + "/v1/health") as resp:
            assert resp.status == 200 and (await resp.json())["result"]["status"] == "ok"
    assert await state_of(seeded.url, "k-admin") == before


async def send(url: str, method: str, path: str, body: object = None, *, key: str | None = "k-read",
               raw: bytes | None = None, ctype: str = MP, headers: dict | None = None) -> tuple[int, dict]:
    data = raw
    if raw is None and body is not None:
        try:
            data = msgpack.packb(body)
        except OverflowError:  # an integer msgpack cannot carry: JSON can
            data, ctype = json.dumps(body).encode(), JS
    hdrs = {"Content-Type": ctype, "Accept": JS, **(headers or {})}
    if key:
        hdrs["Authorization"] = f"Bearer {key}"
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url + "/v1" + path, data=data, headers=hdrs) as resp:
            if resp.content_type != JS:  # the metrics text
                return resp.status, {"text": await resp.text()}
            return resp.status, await resp.json()


def tensor(shape: list[int], data: bytes = b"", dtype: str = "f32") -> dict:
    return {"dtype": dtype, "shape": shape, "data": data}


def nested(depth: int, leaf: object) -> object:
    for _ in range(depth):
        leaf = {"$not": leaf}
    return leaf


Q = "/collections/base/query"
TINY_MODEL = {"type": "vqc", "n_qubits": 2, "layers": 1, "n_classes": 2}
VEC = [1.0, 0.0, 0.0, 0.0]

# (label, key, method, path, body, status, code)
COUNTS = [
    ("ef 2^30", "k-read", "POST", Q, {"vector": VEC, "ef": 2**30}, 413, "limit_exceeded"),
    ("ef 2^31 overflows int", "k-read", "POST", Q, {"vector": VEC, "ef": 2**31}, 413, "limit_exceeded"),
    ("ef 0", "k-read", "POST", Q, {"vector": VEC, "ef": 0}, 400, "invalid_argument"),
    ("per_region 2^40", "k-read", "POST", Q, {"vector": VEC, "tunneling": 0.5, "per_region": 2**40}, 413,
     "limit_exceeded"),
    ("tunneling NaN", "k-read", "POST", Q, {"vector": VEC, "tunneling": float("nan")}, 400, "invalid_tunneling"),
    ("tunneling Inf", "k-read", "POST", Q, {"vector": VEC, "tunneling": float("inf")}, 400, "invalid_tunneling"),
    ("seed negative", "k-read", "POST", Q, {"vector": VEC, "tunneling": 0.5, "seed": -1}, 400, "invalid_argument"),
    ("query_batch rows x top_k", "k-read", "POST", "/collections/base/query_batch",
     {"vectors": [VEC] * 1000, "top_k": 1000}, 413, "limit_exceeded"),
    ("shots 10^12", "k-read", "POST", "/states/measure", {"id": "psi", "shots": 10**12}, 413, "limit_exceeded"),
    ("qubit index 2^40", "k-read", "POST", "/states/measure", {"id": "psi", "qubits": [2**40]}, 400,
     "invalid_argument"),
    ("hnsw ef_search 2^30", "k-write", "POST", "/collections",
     {"name": "h1", "dim": 4, "index": {"type": "hnsw", "ef_search": 2**30}}, 413, "limit_exceeded"),
    ("hnsw m 2^20", "k-write", "POST", "/collections",
     {"name": "h2", "dim": 4, "index": {"type": "hnsw", "m": 2**20}}, 413, "limit_exceeded"),
    ("ivf nlist 2^40", "k-write", "POST", "/collections",
     {"name": "h3", "dim": 4, "index": {"type": "ivf", "nlist": 2**40}}, 413, "limit_exceeded"),
    ("ivf nprobe 2^31", "k-write", "POST", "/collections",
     {"name": "h4", "dim": 4, "index": {"type": "ivf", "nprobe": 2**31}}, 413, "limit_exceeded"),
    ("n_regions 2^40", "k-write", "POST", "/collections/base/build_regions", {"n_regions": 2**40}, 413,
     "limit_exceeded"),
    ("train epochs 10^9", "k-write", "POST", "/jobs",
     {"kind": "train", "params": {"dataset": "d", "model": TINY_MODEL, "epochs": 10**9}},
     413, "limit_exceeded"),
    ("federated batch_size 10^9", "k-fed", "POST", "/jobs",
     {"kind": "federated_fit", "params": {"round": 0, "params": [0.0], "model": TINY_MODEL, "state": {},
                                          "batch_size": 10**9}}, 413, "limit_exceeded"),
]


@pytest.mark.parametrize("label,key,method,path,body,status,code", COUNTS, ids=[c[0] for c in COUNTS])
async def test_every_count_is_bounded(unchanged, label, key, method, path, body, status, code):
    """Item 1: numbers that size work or memory are bounded by server options."""
    got, reply = await send(unchanged.url, method, path, body, key=key)
    assert (got, reply["error"]["code"]) == (status, code), reply


DEEP_FILTER = nested(200, {"i": 1})
WIDE_FILTER = {"$or": [{"i": n} for n in range(5000)]}
SHAPES = [
    ("shape [2^63-1, 0]", Q, {"vector": tensor([2**63 - 1, 0])}, 400, "invalid_vector"),
    ("shape [0, 2^62, 2^62]", Q, {"vector": tensor([0, 2**62, 2**62])}, 400, "invalid_vector"),
    ("65 axes", Q, {"vector": tensor([1] * 65, b"\0\0\0\0")}, 400, "invalid_vector"),
    ("negative axis", Q, {"vector": tensor([-1, 4])}, 400, "invalid_vector"),
    ("filter 200 deep", Q, {"vector": VEC, "filter": DEEP_FILTER}, 413, "limit_exceeded"),
    ("filter 5000 terms", Q, {"vector": VEC, "filter": WIDE_FILTER}, 413, "limit_exceeded"),
    ("str $ndarray bad shape", "/checkpoints",
     {"doc": {"x": {"$ndarray": {"dtype": "str", "shape": [2**62, 2**62], "data": ["a"]}}}}, 400,
     "invalid_argument"),
    ("str $ndarray shape not a list", "/checkpoints",
     {"doc": {"x": {"$ndarray": {"dtype": "str", "shape": "x", "data": ["a"]}}}}, 400, "invalid_argument"),
    ("str $ndarray non-strings", "/checkpoints",
     {"doc": {"x": {"$ndarray": {"dtype": "str", "shape": [1], "data": [{"a": 1}]}}}}, 400, "invalid_argument"),
    ("labels as wide str array", "/datasets",
     {"name": "wide", "X": [[0.0]] * 20000, "y": ["y" * 4000] + ["n"] * 19999}, 413, "limit_exceeded"),
    ("document 500 deep", "/checkpoints", {"doc": nested(500, 1)}, 413, "limit_exceeded"),
    ("document int over 64 bits", "/checkpoints", {"doc": {"n": 2**70}}, 400, "invalid_argument"),
    ("branches of two shapes", "/collections/base/superpose",  # found by the fuzzer
     {"id": "s", "branches": [{"vector": []}, {"vector": [1.0, 2.0]}]}, 400, "dimension_mismatch"),
]


@pytest.mark.parametrize("label,path,body,status,code", SHAPES, ids=[c[0] for c in SHAPES])
async def test_bad_shapes_are_4xx(unchanged, label, path, body, status, code):
    """Item 2: shapes and nesting NumPy or Python recursion would choke on are refused first."""
    key = "k-read" if path == Q else "k-write"
    got, reply = await send(unchanged.url, "POST", path, body, key=key)
    assert (got, reply["error"]["code"]) == (status, code), reply


async def test_deep_filter_in_concurrent_queries_is_4xx(unchanged):
    """Item 2: a hostile filter in concurrent queries."""
    body = {"vector": VEC, "filter": nested(990, {"i": 1})}
    replies = await asyncio.gather(*(send(unchanged.url, "POST", Q, body) for _ in range(8)))
    assert {(status, reply["error"]["code"]) for status, reply in replies} == {(413, "limit_exceeded")}


@pytest.fixture(scope="module")
def genuine(keyless):
    """A real checkpoint (a tiny training run), for forgeries that pass the config-hash check."""
    async def train() -> dict:
        async with AsyncClient(keyless.url) as client:
            x = np.random.default_rng(2).standard_normal((16, 2)).astype(np.float32)
            await client.import_dataset("tiny", x, (x[:, 0] > 0).astype(np.int64))
            job = await client.start_job("train", {
                "dataset": "tiny", "model": {"type": "vqc", "n_qubits": 2, "layers": 1, "n_classes": 2},
                "epochs": 1, "batch_size": 8, "run": "genuine"})
            job = await client.wait_job(job.id, timeout=120)
            assert job.state == "succeeded", job.error
            return await client.load_checkpoint((await client.job_result(job.id))["latest_checkpoint"])
    return asyncio.run(train())


@pytest.mark.parametrize("forgery", [
    {"rng": json.dumps({"bit_generator": "seed", "state": {}})},  # would call numpy.random.seed()
    {"rng": json.dumps({"bit_generator": "test"})},               # would run numpy's test suite
    {"rng": json.dumps({"bit_generator": "PCG64", "state": {"state": "x"}})},
    {"rng": "not json"},
    {"optimizer": {"name": "adam"}},
    {"params": ["x"]},
    {"metrics": {"loss": [{"not": "a number"}]}},
], ids=["numpy.random.seed", "numpy.random.test", "PCG64 bad state", "rng not json", "optimizer fields",
        "params not numbers", "metrics not numbers"])
async def test_forged_checkpoint_is_refused_before_use(keyless, genuine, forgery, name):
    """Item 3: a stored checkpoint is checked against an allow-list before a resume touches it."""
    async with AsyncClient(keyless.url) as client:
        doc = {k: v for k, v in genuine.items() if k not in ("id", "created_at")}
        ckpt = await client.save_checkpoint({**doc, **forgery}, id=f"{name}-e00001")
        before = await state_of(keyless.url, None)
        job = await client.start_job("train", {"resume": ckpt})
        job = await client.wait_job(job.id, timeout=60)
        assert job.state == "failed" and job.error.code == "invalid_checkpoint", job.error
        with pytest.raises(Exception) as exc:
            await client.job_result(job.id)
        assert exc.value.code == "invalid_checkpoint" and type(exc.value).status == 400
        assert (await client.health())["status"] == "ok"
        assert await state_of(keyless.url, None) == before


LONG_ROWS = 1024  # a step takes ~6 s on this model (parameter-shift, 8 qubits); half as long with half the rows


async def long_training(client: AsyncClient, name: str, rows: int) -> dict:
    """A train job whose every batch is one long step (all rows, parameter-shift, 8 qubits)."""
    x = np.random.default_rng(0).standard_normal((rows, 8)).astype(np.float32)
    await client.import_dataset(name, x, (x[:, 0] > 0).astype(np.int64))
    return {"dataset": name, "model": {"type": "vqc", "n_qubits": 8, "layers": 4, "n_classes": 2},
            "gradient": "parameter-shift", "batch_size": rows, "epochs": 2, "run": name}


async def wait_running(client: AsyncClient, job_id: str) -> None:
    while (await client.job(job_id)).state == "pending":
        await asyncio.sleep(0.05)


async def test_job_queue_limit_is_429_with_retry_after(keyed, name):
    """Item 4: at most --max-jobs (2 here) pending or running; the next start is 429 + Retry-After."""
    async with AsyncClient(keyed.url, api_key="k-write") as client:
        x = np.random.default_rng(1).standard_normal((16, 2)).astype(np.float32)
        await client.import_dataset(name, x, (x[:, 0] > 0).astype(np.int64))
        params = {"dataset": name, "model": {"type": "vqc", "n_qubits": 2, "layers": 1, "n_classes": 2},
                  "epochs": 1000, "batch_size": 4, "checkpoint_every": 1000}
        jobs = [await client.start_job("train", params) for _ in range(2)]
        async with aiohttp.ClientSession() as http:
            async with http.post(keyed.url + "/v1/jobs", data=json.dumps({"kind": "train", "params": params}),
                                 headers={"Content-Type": JS, "Authorization": "Bearer k-write"}) as resp:
                assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
                assert (await resp.json())["error"]["code"] == "too_many_requests"
        assert len(await client.list_jobs()) == 2  # the refused job was not queued
        for job in jobs:
            await client.cancel_job(job.id)
        assert {(await client.wait_job(j.id, timeout=60)).state for j in jobs} == {"cancelled"}
        await client.start_job("copy_collection", {"source": "base", "target": name + "-copy"})  # a slot is free


async def test_cancel_stops_a_job_inside_one_long_batch(keyed, name):
    """Item 4: cancelling abandons the step under way. Each epoch is a single long batch, so a
    job that only stopped between batches would first finish epoch 1 and write its checkpoint."""
    async with AsyncClient(keyed.url, api_key="k-write") as client:
        job = await client.start_job("train", await long_training(client, name, rows=LONG_ROWS // 2))
        await wait_running(client, job.id)
        await asyncio.sleep(1.0)  # into the first step (model build and data load take well under this)
        await client.cancel_job(job.id)
        done = await client.wait_job(job.id, timeout=120)
        assert done.state == "cancelled" and done.progress == 0.0
        assert await client.list_checkpoints(run=name) == []


async def test_cancel_stops_a_federated_fit_inside_one_long_batch(keyed, name):
    """Item 4, for the federated kind (started with a federated key): the same test, where an old
    job stops only between batches, so it would report progress 0.5 after the first epoch."""
    rows = LONG_ROWS // 2
    x = np.random.default_rng(3).standard_normal((rows, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = VQC(8, 4, 2, n_features=8)
    stats = FeatureStats.of(x)
    model.scaler.fit(stats)
    model.fit_targets(DataSummary.of(rows, stats, y))
    task = RoundTask(round=0, params=model.init_params(np.random.default_rng(0)), model=model.config(),
                     state=model.state(), dataset=name, epochs=2, batch_size=rows, gradient="parameter-shift")
    async with AsyncClient(keyed.url, api_key="k-write") as writer:
        await writer.import_dataset(name, x, y)
    async with AsyncClient(keyed.url, api_key="k-fed") as client:
        job = await client.start_job("federated_fit", task.to_wire())
        await wait_running(client, job.id)
        await asyncio.sleep(1.0)  # into the first step
        await client.cancel_job(job.id)
        done = await client.wait_job(job.id, timeout=120)
        assert done.state == "cancelled" and done.progress == 0.0


async def test_job_deadline(keyless, name):
    """Item 4: past --max-job-seconds (3 here) a job is stopped, even inside a step, as job_timeout."""
    async with AsyncClient(keyless.url) as client:
        job = await client.start_job("train", await long_training(client, name, rows=LONG_ROWS))
        done = await client.wait_job(job.id, timeout=120)
        assert done.state == "failed" and done.error.code == "job_timeout"
        assert await client.list_checkpoints(run=name) == []
        assert (await client.health())["status"] == "ok"


def test_scope_table_in_the_protocol_doc_is_the_servers():
    doc = (Path(__file__).parents[2] / "docs" / "PROTOCOL.md").read_text()
    assert scope_table.render() in doc


async def test_every_route_with_every_scope(unchanged):
    """Item 5: each operation, called with each key (and none), is refused exactly when the scope
    table says so: 401 without a key, 403 without the scope; otherwise auth lets it through (the
    request itself is harmless: missing fields, or an absent collection or id)."""
    params = {"name": "absent-collection", "id": "absent-id"}
    keys = {None: frozenset(), **{k: expand({scope}) for k, scope in KEYS.items()}}
    checked = 0
    for op in OPS.values():
        path = op.path.format(**params)
        for key, scopes in keys.items():
            status, reply = await send(unchanged.url, op.method, path, {} if op.method == "POST" else None, key=key)
            if op.scope != "public" and key is None:
                expected = {401}
            elif not allows(scopes, op):
                expected = {403}
            else:
                expected = set(range(200, 300)) | {400, 404, 409}
            assert status in expected, (op.name, key, status, reply)
            checked += 1
    assert checked == len(OPS) * 5


async def test_a_route_missing_from_the_table_is_forbidden(tmp_path):
    """Item 5: authorisation fails closed, also for a route someone adds without an operation."""
    app = create_app(ServerConfig(data_dir=tmp_path / "data", keys={"k": frozenset({"admin", "federated"})}))

    async def extra(request: web.Request) -> web.Response:
        return web.json_response({"result": "should not be reached"})

    app.router.add_get("/v1/extra", extra, name="extra")
    app.router.add_get("/v1/unnamed", extra)
    async with TestServer(app, host="127.0.0.1") as srv:
        async with aiohttp.ClientSession() as http:
            for path in ("/v1/extra", "/v1/unnamed"):
                async with http.get(srv.make_url(path), headers={"Authorization": "Bearer k"}) as resp:
                    assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"


async def test_federated_key_reaches_only_federated_jobs(unchanged, name):
    """Item 5 (the rest is test_scopes.py): no raw rows, no other job kinds, not even their status."""
    status, reply = await send(unchanged.url, "GET", "/datasets/base/data", key="k-fed")
    assert (status, reply["error"]["code"]) == (403, "forbidden")
    status, reply = await send(unchanged.url, "POST", "/jobs", {"kind": "copy_collection", "params": {
        "source": "base", "target": name}}, key="k-fed")
    assert (status, reply["error"]["code"]) == (403, "forbidden")
    async with AsyncClient(unchanged.url, api_key="k-write") as client:
        job = await client.start_job("copy_collection", {"source": "base", "target": name})
        await client.wait_job(job.id, timeout=60)
    for method, path in [("GET", f"/jobs/{job.id}"), ("GET", f"/jobs/{job.id}/result"),
                         ("POST", f"/jobs/{job.id}/cancel"), ("DELETE", f"/jobs/{job.id}")]:
        status, reply = await send(unchanged.url, method, path, key="k-fed")
        assert (status, reply["error"]["code"]) == (403, "forbidden"), path
    async with AsyncClient(unchanged.url, api_key="k-admin") as client:
        await client.drop_collection(name)


async def test_keyless_server_answers_only_loopback_hosts_and_protocol_posts(keyless):
    """Item 6: DNS rebinding (a foreign Host) and cross-site form posts are refused."""
    async with AsyncClient(keyless.url) as client:
        before = await client.list_collections()
    for host in ("evil.example", "evil.example:80", "10.0.0.1", "[fe80::1]:8470"):
        status, reply = await send(keyless.url, "GET", "/collections", key=None, headers={"Host": host})
        assert (status, reply["error"]["code"]) == (403, "forbidden"), host
    for host in ("localhost", f"127.0.0.1:{keyless.port}", "[::1]:1", "LOCALHOST"):
        status, _ = await send(keyless.url, "GET", "/collections", key=None, headers={"Host": host})
        assert status == 200, host
    form = b"name=x&dim=4"
    for ctype in ("application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"):
        for path, raw in (("/collections", form), ("/sweep", b"")):
            status, reply = await send(keyless.url, "POST", path, raw=raw, key=None, ctype=ctype)
            assert (status, reply["error"]["code"]) == (415, "unsupported_media_type"), (path, ctype)
    async with AsyncClient(keyless.url) as client:
        assert await client.list_collections() == before


async def test_curl_defaults_head_and_unparsable_requests(keyed):
    """Item 7: Accept */* reads JSON; HEAD /v1/health needs no key; aiohttp's own 400s use the error format."""
    async with aiohttp.ClientSession() as http:
        async with http.get(keyed.url + "/v1/collections", headers={"Accept": "*/*",
                                                                     "Authorization": "Bearer k-read"}) as resp:
            assert resp.status == 200 and resp.content_type == JS and "base" in (await resp.json())["result"]
        async with http.head(keyed.url + "/v1/health") as resp:
            assert resp.status == 200
        async with http.get(keyed.url + "/v1/collections", headers={"Accept": MP, "Authorization": "Bearer k-read"}) \
                as resp:
            assert resp.content_type == MP
    for raw in (b"NOT AN HTTP REQUEST\r\n\r\n", b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: "
                + b"a" * 70000 + b"\r\n\r\n"):
        status, body = raw_exchange(keyed.port, raw)
        assert 400 <= status < 500
        assert json.loads(body)["error"]["code"] == "invalid_argument", body
    status, reply = await send(keyed.url, "GET", "/health", key=None)
    assert status == 200


async def test_dataset_with_a_record_written_by_hand_is_409(keyless, name):
    """Found by the fuzzer: a record upserted into a dataset's collection has no label."""
    async with AsyncClient(keyless.url) as client:
        col = await client.import_dataset(name, np.ones((3, 2)), np.array([0, 1, 0]))
        await col.upsert(["stray"], np.ones((1, 2)))
        status, reply = await send(keyless.url, "GET", f"/datasets/{name}/data", key=None)
        assert (status, reply["error"]["code"]) == (409, "conflict")
        assert (await client.health())["status"] == "ok"


async def test_unknown_query_parameter_is_refused(unchanged):
    status, reply = await send(unchanged.url, "GET", "/checkpoints?run=x&limit=10")
    assert (status, reply["error"]["code"]) == (400, "unknown_field")


def raw_exchange(port: int, request: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


async def test_keys_over_plain_http_on_a_public_address_warn(tmp_path, caplog):
    """Item 6: the start-up warning (in-process; the server binds all interfaces, with a key)."""

    async def start_and_stop(**where: str) -> str:
        caplog.clear()
        config = ServerConfig(data_dir=tmp_path / "data", port=0, keys={"k": frozenset({"admin"})}, **where)
        stop, started = asyncio.Event(), asyncio.get_running_loop().create_future()
        with caplog.at_level(logging.WARNING, logger="qstore_server"):
            task = asyncio.create_task(serve(config, ready=started.set_result, stop=stop))
            await asyncio.wait_for(asyncio.shield(started), 60)
            stop.set()
            await task
        return caplog.text

    assert "API keys travel in plain text" in await start_and_stop(host="0.0.0.0")
    assert "plain text" not in await start_and_stop()  # loopback: no warning
