"""The codec on its own (both formats), and docs/PROTOCOL.md kept in step with it."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest

from qstore_client import ERROR_CODES, Branch, Hit, Measurement, Page, QStoreError, Record
from qstore_client.protocol import DOCUMENT, JSON, MSGPACK, NO_LIMITS, OPS, ROUTES, Limits, dumps, loads, wants_json

DOC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()


def wire(value, binary: bool):
    """Through bytes and back, as a body would travel."""
    return loads(dumps(value, binary), MSGPACK if binary else JSON)


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
def test_results_round_trip(binary):
    v = np.array([0.1, -2.5, 3e-8], dtype=np.float32)
    rec = Record(id="ü/1", vector=v, metadata={"a": [1, "x", None]}, expires_at=12.5, version=3,
                 branches=[Branch(v, "ctx", 0.6 + 0.8j), Branch(v * 2, None, 0j)])
    got = OPS["get"].decode_result(wire(OPS["get"].encode_result([rec, None], binary), binary))
    assert got[1] is None and got[0].id == rec.id and got[0].metadata == rec.metadata
    assert got[0].vector.dtype == np.float32 and np.array_equal(got[0].vector, v)
    assert [(b.context, b.amplitude) for b in got[0].branches] == [("ctx", 0.6 + 0.8j), (None, 0j)]
    hits = [Hit("a", 0.123456789012345, {"k": 1})]
    assert OPS["query"].decode_result(wire(OPS["query"].encode_result(hits, binary), binary)) == hits
    page = OPS["scroll"].decode_result(wire(OPS["scroll"].encode_result(Page([rec], "next"), binary), binary))
    assert page.next_cursor == "next" and page.records[0].version == 3
    m = OPS["measure"].decode_result(wire(OPS["measure"].encode_result(Measurement("c", v, 0.25), binary), binary))
    assert (m.context, m.probability) == ("c", 0.25) and np.array_equal(m.vector, v)
    psi = np.array([0.6, 0.8j], dtype=np.complex128)
    assert np.array_equal(OPS["get_state"].decode_result(wire(OPS["get_state"].encode_result(psi, binary), binary)),
                          psi)


@pytest.mark.parametrize("binary", [True, False], ids=["msgpack", "json"])
def test_documents_keep_arrays_complex_and_bytes(binary):
    doc = {"params": np.arange(6, dtype=np.float64).reshape(2, 3), "rng": np.array([1, 2], dtype=np.uint64),
           "z": 1 - 2j, "raw": b"\x00\xff", "names": np.array(["a", "bc"]), "nested": [{"x": np.float32(1.5)}],
           "flag": np.bool_(True), "t": (1, 2)}
    got = DOCUMENT.decode(wire(DOCUMENT.encode(doc, binary), binary), "doc", NO_LIMITS)
    assert got["params"].dtype == np.float64 and np.array_equal(got["params"], doc["params"])
    assert got["rng"].dtype == np.uint64 and got["rng"].tolist() == [1, 2]
    assert got["z"] == 1 - 2j and got["raw"] == b"\x00\xff" and got["names"].tolist() == ["a", "bc"]
    assert got["nested"] == [{"x": 1.5}] and got["flag"] is True and got["t"] == [1, 2]


def test_request_bodies_decode_to_engine_arguments():
    q = np.array([1, 2, 3], dtype=np.float32)
    for binary in (True, False):
        body = loads(OPS["query"].encode_body(dict(vector=q, top_k=np.int64(3), filter={"a": 1}, context=None),
                                              binary), MSGPACK if binary else JSON)
        assert "context" not in body  # optional None is left out
        args = OPS["query"].decode_args(body, Limits())
        assert args["top_k"] == 3 and args["filter"] == {"a": 1} and np.array_equal(args["vector"], q)
    args = OPS["superpose"].decode_args({"id": "s", "branches": [{"vector": [1.0, 0.0]},
                                                                 {"vector": [0.0, 1.0], "context": "c",
                                                                  "amplitude": [0.0, 2.0]}]}, Limits())
    assert [(c, a) for _, c, a in args["branches"]] == [(None, 1 + 0j), ("c", 2j)]


@pytest.mark.parametrize("field,value,code", [
    ("vectors", {"dtype": "f32", "shape": [2, 2], "data": b"\0" * 15}, "invalid_vector"),
    ("vectors", {"dtype": "f32", "shape": [2, -2], "data": b""}, "invalid_vector"),
    ("vectors", {"dtype": "f32", "shape": [1, 2], "data": b"\0" * 8, "extra": 1}, "invalid_vector"),
    ("vectors", {"dtype": "i4", "shape": [1, 2], "data": b"\0" * 8}, "invalid_vector"),
    ("vectors", {"dtype": "f32", "shape": [1, 1], "data": "not base64!"}, "invalid_vector"),
    ("vectors", [[1, 2], [3]], "invalid_vector"),
    ("vectors", [[[1.0]]], "dimension_mismatch"),
    ("vectors", 5, "invalid_vector"),
    ("ids", ["a", 3], "invalid_id"),
    ("metadata", [[1]], "invalid_metadata"),
    ("coherence_time", "soon", "invalid_coherence_time"),
])
def test_bad_fields_have_codes(field, value, code):
    body = {"ids": ["a"], "vectors": [[1.0, 2.0]], field: value}
    with pytest.raises(QStoreError) as exc:
        OPS["upsert"].decode_args(body, Limits())
    assert exc.value.code == code


def test_limits():
    tight = Limits(max_batch=2, max_dim=3, max_top_k=5)
    for op, body in [("upsert", {"ids": ["a", "b", "c"], "vectors": [[1.0]] * 3}),
                     ("query", {"vector": [1.0] * 4}),
                     ("query", {"vector": [1.0], "top_k": 6}),
                     ("create_collection", {"name": "x", "dim": 4})]:
        with pytest.raises(QStoreError) as exc:
            OPS[op].decode_args(body, tight)
        assert exc.value.code == "limit_exceeded"


def test_client_side_encoding_failures_carry_the_field_code():
    with pytest.raises(QStoreError) as exc:
        OPS["upsert"].encode_body(dict(ids=["a"], vectors=[[1.0, "x"]]), True)
    assert exc.value.code == "invalid_vector"
    with pytest.raises(QStoreError) as exc:
        OPS["upsert"].encode_body(dict(ids=["a"], vectors=[[1.0]], metadata=[{"s": {1, 2}}]), True)
    assert exc.value.code == "invalid_metadata"


def test_negotiation():
    """JSON unless Accept names msgpack: curl's */* and a missing Accept read JSON (issue 12 item 7)."""
    assert wants_json("") and wants_json("*/*") and wants_json("application/json")
    assert not wants_json("application/msgpack") and not wants_json("application/x-msgpack, */*;q=0.1")
    with pytest.raises(QStoreError) as exc:
        loads(b"{}", "text/plain")
    assert exc.value.code == "unsupported_media_type"


def test_protocol_doc_lists_every_error_code_with_its_status_and_class():
    rows = {code: (status, cls) for code, status, cls in
            re.findall(r"^\| `([a-z_]+)` \| \**(\d+)\** \| (\w+) \|", DOC, re.M)}
    assert set(rows) == set(ERROR_CODES)
    for code, cls in ERROR_CODES.items():
        status = 405 if code == "method_not_allowed" else cls.status
        assert rows[code] == (str(status), cls.__name__), code


def test_protocol_doc_lists_every_route_and_field():
    for name, (method, path) in ROUTES.items():
        # Record and primitive routes are listed relative to /collections/{name}.
        forms = {path, path.removeprefix("/collections/{name}") or path}
        assert any(re.search(rf"^\| {method} \| `{re.escape(p)}[`?]", DOC, re.M) for p in forms), (name, path)
        for field in OPS[name].fields:
            assert f"`{field}" in DOC or f'"{field}' in DOC, (name, field)


def test_client_methods_match_the_operation_table():
    """Issue 15 item 1: the client's methods are checked against `OPS`, the single source: each
    operation has a method of its name whose parameters are exactly the op's body fields, path
    parameters (except the collection a Collection method belongs to) and query parameters."""
    from qstore_client.client import AsyncClient, Collection

    for op in OPS.values():
        on_collection = op.path.startswith("/collections/{name}/") or op.name == "collection"
        owner = Collection if on_collection and op.name != "collection" else AsyncClient
        if op.name == "openapi":
            assert not hasattr(AsyncClient, "openapi")  # a document for tools, not an API call
            continue
        method = getattr(owner, op.name)
        params = [p for p in inspect.signature(method).parameters if p != "self"]
        path = [p for p in op.path_params if not (owner is Collection and p == "name")]
        assert sorted(params) == sorted([*op.fields, *path, *op.query]), (op.name, params)
