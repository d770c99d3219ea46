"""HTTP handlers: decode the request, call the engine, encode the result.

Paths and methods come from `qstore_client.protocol.ROUTES`; each route is named after its
operation, which is how the auth middleware knows whether a call writes.
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from qstore import Collection, validation
from qstore_client.protocol import PREFIX, ROUTES

from . import __version__
from .middleware import require_admin, require_write
from .state import BATCHER, CONFIG, DB, JOBS, METRICS
from .wire import read_args, reply


def describe(col: Collection) -> dict[str, Any]:
    return {"name": col.name, "dim": col.dim, "metric": col.metric}


async def collection_of(request: web.Request) -> Collection:
    return await request.app[DB].collection(request.match_info["name"])


# ---------------------------------------------------------------- server

async def health(request: web.Request) -> web.Response:
    return reply(request, "health", {"status": "ok", "version": __version__})


async def metrics(request: web.Request) -> web.Response:
    m = request.app[METRICS]
    await m.refresh(request.app[DB], request.app[JOBS].counts())
    return web.Response(body=m.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


# ---------------------------------------------------------------- collections

async def list_collections(request: web.Request) -> web.Response:
    return reply(request, "list_collections", await request.app[DB].list_collections())


async def create_collection(request: web.Request) -> web.Response:
    args = await read_args(request, "create_collection")
    return reply(request, "create_collection", describe(await request.app[DB].create_collection(**args)), 201)


async def collection(request: web.Request) -> web.Response:
    return reply(request, "collection", describe(await collection_of(request)))


async def drop_collection(request: web.Request) -> web.Response:
    return reply(request, "drop_collection", await request.app[DB].drop_collection(request.match_info["name"]))


async def info(request: web.Request) -> web.Response:
    return reply(request, "info", await (await collection_of(request)).info())


async def count(request: web.Request) -> web.Response:
    return reply(request, "count", await (await collection_of(request)).count())


def collection_call(op: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Handler for a collection method whose body fields are exactly its keyword arguments."""

    async def handler(request: web.Request) -> web.Response:
        col = await collection_of(request)
        args = await read_args(request, op)
        return reply(request, op, await getattr(col, op)(**args))

    handler.__name__ = op
    return handler


async def query(request: web.Request) -> web.Response:
    col = await collection_of(request)
    args = await read_args(request, "query")
    return reply(request, "query", await request.app[BATCHER].query(col, args))


async def measure(request: web.Request) -> web.Response:
    col = await collection_of(request)
    args = await read_args(request, "measure")
    if args.get("collapse"):
        require_write(request, "measure with collapse=true")
    return reply(request, "measure", await col.measure(**args))


# ---------------------------------------------------------------- states, datasets, checkpoints

def database_call(op: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """Handler for a Database method whose body fields are exactly its keyword arguments."""

    async def handler(request: web.Request) -> web.Response:
        args = await read_args(request, op)
        return reply(request, op, await getattr(request.app[DB], op)(**args))

    handler.__name__ = op
    return handler


async def put_state(request: web.Request) -> web.Response:
    args = await read_args(request, "put_state")
    return reply(request, "put_state", await request.app[DB].put_state(args["id"], args["state"]))


async def sweep(request: web.Request) -> web.Response:
    return reply(request, "sweep", await request.app[DB].sweep())


async def backup(request: web.Request) -> web.Response:
    require_admin(request, "backup")
    args = await read_args(request, "backup")
    name = validation.check_name(args["name"], "backup")
    path = request.app[CONFIG].data_dir / "backups" / name
    return reply(request, "backup", await request.app[DB].backup(str(path)), 201)


async def import_dataset(request: web.Request) -> web.Response:
    args = await read_args(request, "import_dataset")
    return reply(request, "import_dataset", describe(await request.app[DB].import_dataset(**args)), 201)


async def list_datasets(request: web.Request) -> web.Response:
    return reply(request, "list_datasets", await request.app[DB].list_datasets())


async def dataset_info(request: web.Request) -> web.Response:
    return reply(request, "dataset_info", await request.app[DB].dataset_info(request.match_info["name"]))


async def load_dataset(request: web.Request) -> web.Response:
    return reply(request, "load_dataset", await request.app[DB].load_dataset(request.match_info["name"]))


async def save_checkpoint(request: web.Request) -> web.Response:
    args = await read_args(request, "save_checkpoint")
    ckpt_id = await request.app[DB].save_checkpoint(args["checkpoint"], id=args.get("id"))
    return reply(request, "save_checkpoint", ckpt_id, 201)


async def list_checkpoints(request: web.Request) -> web.Response:
    return reply(request, "list_checkpoints", await request.app[DB].list_checkpoints(run=request.query.get("run")))


async def load_checkpoint(request: web.Request) -> web.Response:
    return reply(request, "load_checkpoint", await request.app[DB].load_checkpoint(request.match_info["id"]))


async def delete_checkpoint(request: web.Request) -> web.Response:
    return reply(request, "delete_checkpoint", await request.app[DB].delete_checkpoint(request.match_info["id"]))


# ---------------------------------------------------------------- jobs

async def job_kinds(request: web.Request) -> web.Response:
    return reply(request, "job_kinds", sorted(request.app[JOBS].kinds))


async def start_job(request: web.Request) -> web.Response:
    args = await read_args(request, "start_job")
    return reply(request, "start_job", request.app[JOBS].start(args["kind"], args.get("params")).to_wire(), 202)


async def list_jobs(request: web.Request) -> web.Response:
    return reply(request, "list_jobs", [job.to_wire() for job in request.app[JOBS].list()])


async def job(request: web.Request) -> web.Response:
    return reply(request, "job", request.app[JOBS].get(request.match_info["id"]).to_wire())


async def job_result(request: web.Request) -> web.Response:
    return reply(request, "job_result", request.app[JOBS].result(request.match_info["id"]))


async def cancel_job(request: web.Request) -> web.Response:
    return reply(request, "cancel_job", request.app[JOBS].cancel(request.match_info["id"]).to_wire())


async def delete_job(request: web.Request) -> web.Response:
    return reply(request, "delete_job", request.app[JOBS].delete(request.match_info["id"]))


HANDLERS: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    "health": health, "list_collections": list_collections, "create_collection": create_collection,
    "collection": collection, "drop_collection": drop_collection, "info": info, "count": count,
    **{op: collection_call(op) for op in ("upsert", "get", "delete", "query_batch", "scroll",
                                          "superpose", "entangle", "disentangle", "update", "correlation",
                                          "build_regions")},
    "query": query, "measure": measure,
    "put_state": put_state,
    **{op: database_call(op) for op in ("get_state", "measure_state", "delete_state")},
    "sweep": sweep, "backup": backup, "import_dataset": import_dataset, "list_datasets": list_datasets,
    "dataset_info": dataset_info, "load_dataset": load_dataset,
    "save_checkpoint": save_checkpoint, "list_checkpoints": list_checkpoints,
    "load_checkpoint": load_checkpoint, "delete_checkpoint": delete_checkpoint,
    "job_kinds": job_kinds, "start_job": start_job, "list_jobs": list_jobs, "job": job,
    "job_result": job_result, "cancel_job": cancel_job, "delete_job": delete_job,
}


def setup_routes(app: web.Application) -> None:
    for op, (method, path) in ROUTES.items():
        app.router.add_route(method, PREFIX + path, HANDLERS[op], name=op)
    app.router.add_get(PREFIX + "/metrics", metrics, name="metrics")
