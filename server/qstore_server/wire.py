"""Reading request bodies and writing replies in the format the caller negotiated."""
from __future__ import annotations

from typing import Any

from aiohttp import web

from qstore_client.errors import ERROR_CODES, QStoreError, error
from qstore_client.protocol import JSON, MSGPACK, Op, Raw, dumps, loads, wants_json

from .state import CONFIG

RETRY_AFTER_SECONDS = 1  # for 429: the job queue frees a slot as soon as any job finishes


async def read_body(request: web.Request) -> Any:
    """The decoded body ({} when empty); too large, unparsable or of another media type is a 4xx."""
    limit = request.app[CONFIG].limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise error("limit_exceeded", f"body of {request.content_length} bytes is over max_body_bytes={limit}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise error("limit_exceeded", f"body is over max_body_bytes={limit}") from None
    if not raw:
        return {}
    return loads(raw, request.content_type)


async def read_args(request: web.Request, op: Op) -> dict[str, Any]:
    """Validated keyword arguments for the engine call behind `op`."""
    return op.decode_args(await read_body(request), request.app[CONFIG].limits)


def binary_reply(request: web.Request) -> bool:
    return not wants_json(request.headers.get("Accept", ""))


def reply(request: web.Request, op: Op, value: Any) -> web.Response:
    if isinstance(op.result, Raw):
        body = value if isinstance(value, bytes) else dumps(value, binary=False)
        return web.Response(body=body, status=op.status, headers={"Content-Type": op.result.media})
    binary = binary_reply(request)
    return web.Response(body=dumps(op.encode_result(value, binary), binary), status=op.status,
                        content_type=MSGPACK if binary else JSON)


def error_reply(request: web.Request, exc: QStoreError, status: int | None = None) -> web.Response:
    """The status follows the code's class in ERROR_CODES, the same class clients rebuild."""
    binary = binary_reply(request)
    status = status or ERROR_CODES.get(exc.code, type(exc)).status
    headers = {}
    if exc.code == "unauthorized":
        headers["WWW-Authenticate"] = 'Bearer realm="qstore"'
    if status == 429:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return web.Response(body=dumps(exc.to_payload(), binary), status=status,
                        content_type=MSGPACK if binary else JSON, headers=headers)
