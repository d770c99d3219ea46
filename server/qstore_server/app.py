"""The aiohttp application: `create_app(config)` wires state, middlewares, routes and resources."""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from qstore import Database

from .auth import KeyRing
from .config import ServerConfig
from .console import setup_console
from .job_kinds import builtin_kinds
from .jobs import JobRegistry
from .metrics import Metrics
from .middleware import protocol_middleware
from .routes import setup_routes
from .state import CONFIG, DB, JOBS, KEYS, METRICS


async def open_database(app: web.Application) -> AsyncIterator[None]:
    """LMDB and indexes live exactly as long as the app; closing flushes and syncs them."""
    config = app[CONFIG]
    db = await Database.open(str(config.data_dir), store=config.store, qdrant_url=config.qdrant_url,
                             qdrant_options=dict(config.qdrant_options))
    app[DB] = db
    try:
        yield
    finally:
        await db.close()


async def run_jobs(app: web.Application) -> AsyncIterator[None]:
    """Job workers start after the database and stop (cancelled, drained) before it closes."""
    config = app[CONFIG]
    kinds = builtin_kinds() if config.job_kinds is None else config.job_kinds
    jobs = JobRegistry(app[DB], kinds, config.job_workers, limits=config.limits)
    app[JOBS] = jobs
    yield
    await jobs.close(timeout=config.shutdown_timeout)


def create_app(config: ServerConfig) -> web.Application:
    app = web.Application(client_max_size=config.limits.max_body_bytes,
                          middlewares=[protocol_middleware])
    app[CONFIG] = config
    app[KEYS] = KeyRing(config.keys)
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(open_database)
    app.cleanup_ctx.append(run_jobs)
    setup_routes(app)
    setup_console(app)
    return app
