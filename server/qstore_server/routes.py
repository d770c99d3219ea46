"""HTTP handlers, generated from the operation table `qstore_client.protocol.OPS`.

One handler per operation: decode the body by the op's fields, add path and query parameters,
call the engine, encode the result with the op's status. The engine call is the only part
written per operation (`CALLS`), and most of those are "the method of the same name".
Routes are named after their operations, which is how the auth middleware finds the scope.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from qstore import Collection, validation
from qstore_client.errors import error
from qstore_client.protocol import OPS, PREFIX, Op

from . import __version__
from .auth import check_job_kind
from .middleware import require_scope
from .openapi import openapi_document
from .state import ACCESS, CONFIG, DB, JOBS, METRICS
from .wire import read_args, reply

Call = Callable[[web.Request, Op, dict[str, Any]], Awaitable[Any]]


async def collection_of(request: web.Request) -> Collection:
    return await request.app[DB].collection(request.match_info["name"])


def database_method(request: web.Request, op: Op, args: dict[str, Any]) -> Awaitable[Any]:
    """`Database.<op>`: path parameters ({name}, {id}) and body fields are its keyword arguments."""
    return getattr(request.app[DB], op.name)(**request.match_info, **args)


async def collection_method(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    """`Collection.<op>` of the collection in the path; body fields are its keyword arguments."""
    return await getattr(await collection_of(request), op.name)(**args)


async def health(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    return {"status": "ok", "version": __version__}


async def openapi(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    return openapi_document(__version__)


async def metrics(request: web.Request, op: Op, args: dict[str, Any]) -> bytes:
    m = request.app[METRICS]
    await m.refresh(request.app[DB], request.app[JOBS].counts())
    return m.render()


async def collection(request: web.Request, op: Op, args: dict[str, Any]) -> Collection:
    return await collection_of(request)


async def query_batch(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    rows = len(args["vectors"]) if args["vectors"].ndim == 2 else 1
    request.app[CONFIG].limits.check("max_hits", rows * args.get("top_k", 10), "rows x top_k of query_batch")
    return await collection_method(request, op, args)


async def measure(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    if args.get("collapse"):
        require_scope(request, "write", "measure with collapse=true")
    return await collection_method(request, op, args)


async def backup(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    """Into ``<data dir>/backups/<name>``: callers name a backup, never a path on the server."""
    name = validation.check_name(args["name"], "backup")
    return await request.app[DB].backup(str(request.app[CONFIG].data_dir / "backups" / name))


# ---------------------------------------------------------------- jobs (a federated key sees federated jobs only)

async def job_kinds(request: web.Request, op: Op, args: dict[str, Any]) -> list[str]:
    return sorted(request.app[JOBS].kinds)


async def start_job(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    check_job_kind(request[ACCESS], op, args["kind"])
    return (await request.app[JOBS].start(args["kind"], args.get("params"))).to_wire()


async def list_jobs(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
    return [job.to_wire() for job in request.app[JOBS].list()]


def job_call(method: str) -> Call:
    async def call(request: web.Request, op: Op, args: dict[str, Any]) -> Any:
        jobs = request.app[JOBS]
        check_job_kind(request[ACCESS], op, jobs.get(request.match_info["id"]).kind)
        value = getattr(jobs, method)(request.match_info["id"])
        return value.to_wire() if hasattr(value, "to_wire") else value
    return call


CALLS: dict[str, Call] = {
    "health": health, "openapi": openapi, "metrics": metrics, "collection": collection,
    "query_batch": query_batch, "measure": measure, "backup": backup,
    "job_kinds": job_kinds, "start_job": start_job, "list_jobs": list_jobs,
    "job": job_call("get"), "job_result": job_call("result"), "cancel_job": job_call("cancel"),
    "delete_job": job_call("delete"),
}


def call_for(op: Op) -> Call:
    if op.name in CALLS:
        return CALLS[op.name]
    return collection_method if op.path.startswith("/collections/{name}/") else database_method


def handler(op: Op) -> Callable[[web.Request], Awaitable[web.Response]]:
    call = call_for(op)

    async def handle(request: web.Request) -> web.Response:
        query = request.query if request.query_string else None  # parsing costs even an empty one
        if query:
            unknown = set(query) - set(op.query)
            if unknown:
                raise error("unknown_field", f"{op.name}: unknown query parameter(s) {sorted(unknown)}")
        args = await read_args(request, op) if op.method == "POST" else {}
        if query:
            args.update((k, query[k]) for k in op.query if k in query)
        return reply(request, op, await call(request, op, args))

    handle.__name__ = op.name
    return handle


# aiohttp tries the routes under one path prefix in the order they were added.
HOT = ("query", "upsert", "query_batch", "get")


def setup_routes(app: web.Application) -> None:
    for op in sorted(OPS.values(), key=lambda op: op.name not in HOT):
        if op.method == "GET":  # HEAD too for public routes (load balancers probe /v1/health with HEAD)
            app.router.add_get(PREFIX + op.path, handler(op), name=op.name, allow_head=op.scope == "public")
        else:
            app.router.add_route(op.method, PREFIX + op.path, handler(op), name=op.name)
