"""A Qdrant server for tests: the REST endpoints Q-Store uses, answered by qdrant-client's local
mode (in memory). Local mode can only be opened by one process; behind this HTTP front, any
number of Q-Store server processes share it, as they would share a real deployment.

A fake of an outside service at the network boundary: Q-Store's own code runs unchanged, with
``qstore serve --qdrant-url http://127.0.0.1:PORT``."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, TypeAdapter
from qdrant_client import QdrantClient
from qdrant_client.http import models as m

DONE = m.UpdateResult(operation_id=0, status=m.UpdateStatus.COMPLETED)


def _json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    return value


def create_fake_qdrant() -> web.Application:
    local = QdrantClient(location=":memory:")
    routes = web.RouteTableDef()

    def handler(method: str, path: str, model: Any = None):
        def wrap(fn):
            async def run(request: web.Request) -> web.Response:
                body = await request.json() if model is not None else None
                parsed = TypeAdapter(model).validate_python(body) if model is not None else None
                try:
                    result = fn(request.match_info.get("c"), parsed)
                except ValueError as exc:  # local mode's "collection not found" and the like
                    status = 404 if "not found" in str(exc).lower() else 400
                    return web.json_response({"status": {"error": str(exc)}, "time": 0.0}, status=status)
                return web.json_response({"result": _json(result), "status": "ok", "time": 0.0})
            routes.route(method, path)(run)
            return fn
        return wrap

    @handler("GET", "/")
    def version(_c, _b):
        return {"title": "qdrant (test fake over local mode)", "version": "1.20.0"}

    @handler("GET", "/collections/{c}/exists")
    def exists(c, _b):
        return {"exists": local.collection_exists(c)}

    @handler("PUT", "/collections/{c}", m.CreateCollection)
    def create(c, b):
        return local.create_collection(c, vectors_config=b.vectors)

    @handler("DELETE", "/collections/{c}")
    def drop(c, _b):
        return local.delete_collection(c)

    @handler("PUT", "/collections/{c}/index", m.CreateFieldIndex)
    def index(c, b):
        return DONE  # local mode has no payload indexes

    @handler("PUT", "/collections/{c}/points", m.PointInsertOperations)
    def upsert(c, b):
        return local.upsert(c, points=b.points)

    @handler("POST", "/collections/{c}/points", m.PointRequest)
    def retrieve(c, b):
        return local.retrieve(c, b.ids, with_payload=b.with_payload, with_vectors=b.with_vector)

    @handler("POST", "/collections/{c}/points/scroll", m.ScrollRequest)
    def scroll(c, b):
        points, nxt = local.scroll(c, scroll_filter=b.filter, limit=b.limit or 10, offset=b.offset,
                                   with_payload=b.with_payload, with_vectors=b.with_vector)
        return {"points": points, "next_page_offset": nxt}

    @handler("POST", "/collections/{c}/points/delete", m.PointsSelector)
    def delete(c, b):
        return local.delete(c, points_selector=b)

    @handler("POST", "/collections/{c}/points/count", m.CountRequest)
    def count(c, b):
        return local.count(c, count_filter=b.filter, exact=True)

    @handler("POST", "/collections/{c}/points/query/groups", m.QueryGroupsRequest)
    def groups(c, b):
        return local.query_points_groups(c, query=b.query, group_by=b.group_by, limit=b.limit, group_size=b.group_size,
                                         query_filter=b.filter, with_payload=b.with_payload, with_vectors=b.with_vector)

    @handler("POST", "/collections/{c}/points/query/batch", m.QueryRequestBatch)
    def query_batch(c, b):
        # local mode searches exactly: its search parameters would only warn
        return local.query_batch_points(c, requests=[r.model_copy(update={"params": None}) for r in b.searches])

    @handler("POST", "/collections/{c}/points/batch", m.UpdateOperations)
    def batch(c, b):
        return local.batch_update_points(c, update_operations=b.operations)

    app = web.Application()
    app.add_routes(routes)
    return app


class FakeQdrant:
    """The fake on a free loopback port, served from a thread of its own, so that blocking test
    code (starting server processes) never stalls it. ``url`` is what --qdrant-url takes."""

    def __init__(self) -> None:
        import asyncio
        import threading
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(create_fake_qdrant())
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fake-qdrant", daemon=True)
        self._thread.start()
        ready.wait(30)

    def close(self) -> None:
        import asyncio
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
