"""The two middlewares: errors (outermost, also where each outcome is counted) and auth."""
from __future__ import annotations

import logging
import time
from typing import Awaitable, Callable

from aiohttp import web
from qstore_client.errors import QStoreError, error
from qstore_client.protocol import OPS

from .state import ACCESS, KEYS, METRICS
from .wire import error_reply

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_ROUTES = frozenset({"health"})  # load balancers probe without a key


def http_error(exc: web.HTTPException) -> QStoreError:
    """aiohttp's own refusals (no route, wrong method, body too large) in protocol terms."""
    if exc.status == 404:
        return error("not_found", "no such route; see docs/PROTOCOL.md for the routes under /v1/")
    if exc.status == 405:
        return error("method_not_allowed", f"{exc.reason}: this route does not take that method")
    if exc.status == 413:
        return error("limit_exceeded", "body is over max_body_bytes")
    if exc.status >= 500:
        return error("internal", exc.reason)
    return error("invalid_argument", exc.text or exc.reason)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Map every failure to {"error": {code, message}} with its status, and record metrics."""
    started = time.perf_counter()
    code = None
    try:
        response = await handler(request)
    except QStoreError as exc:
        code, response = exc.code, error_reply(request, exc)
    except web.HTTPException as exc:
        err = http_error(exc)
        code, response = err.code, error_reply(request, err, status=exc.status)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        err = error("internal", "internal server error; the server log has details")
        code, response = err.code, error_reply(request, err)
    route = request.match_info.route.name or "unmatched"
    request.app[METRICS].observe(route, request.method, response.status, time.perf_counter() - started, code)
    return response


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bearer-key check; read-only keys pass only for routes that change nothing."""
    keys = request.app[KEYS]
    route = request.match_info.route.name
    if not keys.enabled or route in OPEN_ROUTES:
        request[ACCESS] = "write"
        return await handler(request)
    access = keys.access(request.headers.get("Authorization"))
    op = OPS.get(route or "")
    if access == "read" and op is not None and not op.read:
        raise error("forbidden", f"{route} changes data; this API key is read-only")
    request[ACCESS] = access
    return await handler(request)


def require_admin(request: web.Request, what: str) -> None:
    """For administrative calls (backups). Until keys carry scopes, the admin scope is a write key."""
    if request[ACCESS] != "write":
        raise error("forbidden", f"{what} needs the admin scope; this API key is read-only")


def require_write(request: web.Request, what: str) -> None:
    """For calls whose arguments decide if they write (measure with collapse=True)."""
    if request[ACCESS] != "write":
        raise error("forbidden", f"{what} changes data; this API key is read-only")
