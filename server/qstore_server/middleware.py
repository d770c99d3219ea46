"""The middleware: browser guards, auth, errors (where each outcome is counted).
Plus the replacement for aiohttp's plain-text replies to requests it cannot even parse."""
from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from qstore_client.errors import QStoreError, error
from qstore_client.protocol import JSON, OPS, dumps, is_msgpack

from .auth import allows
from .config import is_loopback
from .console import CONSOLE_ROUTES
from .state import ACCESS, CONFIG, KEYS, METRICS
from .wire import error_reply

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def http_error(status: int, reason: str, text: str = "") -> QStoreError:
    """aiohttp's own refusals (no route, wrong method, body too large, bad syntax) in protocol terms."""
    if status == 404:
        return error("not_found", "no such route; see docs/PROTOCOL.md for the routes under /v1/")
    if status == 405:
        return error("method_not_allowed", f"{reason}: this route does not take that method")
    if status == 413:
        return error("limit_exceeded", "body is over max_body_bytes")
    if status >= 500:
        return error("internal", reason)
    return error("invalid_argument", text or reason)


@web.middleware
async def protocol_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one middleware (each extra layer costs every request a coroutine): check the request,
    map every failure to {"error": {code, message}} with its status, and record metrics."""
    started = time.perf_counter()
    code = None
    try:
        guard_browser(request)
        authorize(request)
        response = await handler(request)
    except QStoreError as exc:
        code, response = exc.code, error_reply(request, exc)
    except web.HTTPException as exc:
        err = http_error(exc.status, exc.reason, exc.text or "")
        code, response = err.code, error_reply(request, err, status=exc.status)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        err = error("internal", "internal server error; the server log has details")
        code, response = err.code, error_reply(request, err)
    route = request.match_info.route.name or "unmatched"
    request.app[METRICS].observe(route, request.method, response.status, time.perf_counter() - started, code)
    return response


def host_name(host: str) -> str:
    """The name part of a Host header: without the port, IPv6 brackets removed, lower case."""
    if host.startswith("["):
        return host[1:].partition("]")[0].lower()
    return host.rpartition(":")[0].lower() if host.count(":") == 1 else host.lower()


def guard_browser(request: web.Request) -> None:
    """Stop what a web page can make a browser send: DNS rebinding (a keyless server answers only
    loopback or configured Host names) and cross-site form posts (a POST needs a protocol type)."""
    config = request.app[CONFIG]
    if not config.auth_enabled and not config.allow_unauthenticated_remote:
        name = host_name(request.headers.get("Host", ""))
        if not (is_loopback(name) or name in config.allowed_hosts):
            raise error("forbidden", f"Host {name!r} is not served: without API keys this server answers "
                                     "loopback names only (add names with --allowed-host)")
    if request.method == "POST" and not (is_msgpack(request.content_type) or request.content_type == JSON):
        raise error("unsupported_media_type", f"a POST needs Content-Type application/msgpack or {JSON}, "
                                              f"even with an empty body; got {request.content_type!r}")


def authorize(request: web.Request) -> None:
    """Bearer key -> scopes; the operation must be in the scope table for one of them (fail closed)."""
    op = OPS.get(request.match_info.route.name or "")
    if op is None:
        if request.match_info.http_exception is not None:
            return  # no route: 404 / 405 from aiohttp, mapped above
        if request.match_info.route.name in CONSOLE_ROUTES and request.path.startswith("/ui"):
            return  # the console's static files; its calls carry the key
        raise error("forbidden", f"{request.method} {request.path} is in no scope")
    scopes = request.app[KEYS].scopes(request.headers.get("Authorization")) if op.scope != "public" else frozenset()
    if not allows(scopes, op):
        raise error("forbidden", f"{op.name} needs an API key with the {op.scope} scope")
    request[ACCESS] = scopes


def require_scope(request: web.Request, scope: str, what: str) -> None:
    """For calls whose arguments decide the scope they need (measure with collapse=True)."""
    if scope not in request[ACCESS]:
        raise error("forbidden", f"{what} needs an API key with the {scope} scope")


class ProtocolRequestHandler(RequestHandler):
    """aiohttp answers requests it cannot parse (bad request line, oversized headers) before any
    middleware runs, in plain text; this gives those replies the protocol's JSON error body."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)
        err = http_error(status, "bad request" if status < 500 else "internal server error",
                         f"the request could not be parsed: {message}" if status < 500 and message else "")
        response.body = dumps(err.to_payload(), binary=False)
        response.content_type = JSON
        return response


class ProtocolServer(web.Server):
    def __call__(self) -> RequestHandler:
        return ProtocolRequestHandler(self, loop=self._loop, **self._kwargs)


class ProtocolRunner(web.AppRunner):
    """An AppRunner whose connections use ProtocolRequestHandler."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = ProtocolServer  # the same object, built by the app, with our handler factory
        return server
