"""The OpenAPI 3.1 description of the protocol, built from the operation table the server routes by.

Bodies are described in their JSON form (msgpack carries the same tree, with vectors as
tensors); `x-scope` and `x-federated` give each operation's row of the scope table.
"""
from __future__ import annotations

from functools import cache
from typing import Any

from qstore_client.errors import ERROR_CODES
from qstore_client.protocol import JSON, MSGPACK, OPS, PREFIX, Op, Raw, fields_schema

ERROR_SCHEMA = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string", "enum": sorted(ERROR_CODES)},
                                            "message": {"type": "string"}}}}}


def operation(op: Op) -> dict[str, Any]:
    if isinstance(op.result, Raw):
        success = {"content": {op.result.media.split(";")[0]: {"schema": op.result.schema()}}}
    else:
        success = {"content": {JSON: {"schema": {"type": "object", "required": ["result"],
                                                 "properties": {"result": op.result.schema()}}}}}
    doc: dict[str, Any] = {
        "operationId": op.name,
        "x-scope": op.scope,
        "x-federated": op.federated,
        "parameters": [{"name": p, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
                       for p in op.path_params]
                      + [{"name": q, "in": "query", "required": False, "schema": {"type": "string"}}
                         for q in op.query],
        "responses": {
            str(op.status): {"description": "success", **success},
            "4XX": {"description": "refused: {error: {code, message}}",
                    "content": {JSON: {"schema": ERROR_SCHEMA}, MSGPACK: {"schema": ERROR_SCHEMA}}},
        },
    }
    if op.scope == "public":
        doc["security"] = []
    if op.method == "POST":
        body = fields_schema(op.fields, op.required)
        doc["requestBody"] = {"required": True,
                              "content": {JSON: {"schema": body}, MSGPACK: {"schema": body}}}
    return doc


@cache
def _document(version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for op in OPS.values():
        paths.setdefault(PREFIX + op.path, {})[op.method.lower()] = operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Q-Store", "version": version,
                 "description": "The Q-Store wire protocol, version 1 (docs/PROTOCOL.md)."},
        "paths": paths,
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def openapi_document(version: str) -> dict[str, Any]:
    return _document(version)
