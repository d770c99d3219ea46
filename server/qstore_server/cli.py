"""`qstore serve`: arguments, startup checks and the serve loop with graceful shutdown."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from qstore import runtime
from qstore_client.protocol import Limits

from .config import DEFAULT_PORT, ServerConfig, is_loopback

log = logging.getLogger("qstore_server")

SERVE_HELP = "Serve a data directory over HTTP (msgpack or JSON under /v1/, see docs/PROTOCOL.md)."
KEY_HELP = """\
authentication:
  Keys come from QSTORE_API_KEY (keys with the read, write and admin scopes, comma-separated),
  QSTORE_READONLY_API_KEY (read scope) and QSTORE_KEYS ('KEY SCOPE[,SCOPE]' entries separated by
  ';', scopes read | write | admin | federated), and/or from the matching key files (one entry a
  line, '#' comments). Clients send 'Authorization: Bearer KEY'.
  With no key configured the server only binds a loopback address, unless
  --allow-unauthenticated-remote is given, and answers only loopback Host names (--allowed-host
  adds more)."""

LIMIT_HELP = {
    "max_body_bytes": "largest request body", "max_batch": "most ids / vectors / queries in one request",
    "max_dim": "largest vector dimension", "max_top_k": "largest top_k (and per_region) of a query",
    "max_hits": "most hits one query_batch may return (rows x top_k)",
    "max_ef": "largest ef of a query, and ef_search / ef_construction of an index",
    "max_hnsw_m": "largest m of an HNSW index", "max_nlist": "largest nlist / nprobe of an IVF index",
    "max_regions": "most tunneling regions", "max_shots": "most shots of measure_state",
    "max_filter_depth": "deepest nesting of a filter", "max_filter_terms": "most terms in a filter",
    "max_epochs": "most epochs of a job", "max_train_batch": "largest batch_size of a job",
    "max_jobs": "most jobs pending or running (more get 429)", "max_job_seconds": "a job's deadline, in seconds",
}


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Limits()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = KEY_HELP
    parser.add_argument("--data-dir", required=True, help="LMDB data directory (created if missing)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help="TCP port, 0 for any free one (default: %(default)s)")
    auth = parser.add_argument_group("keys and TLS")
    auth.add_argument("--api-key-file", help="file of write API keys, added to QSTORE_API_KEY")
    auth.add_argument("--readonly-key-file", help="file of read-only API keys, added to QSTORE_READONLY_API_KEY")
    auth.add_argument("--keys-file", help="file of scoped keys ('KEY SCOPE[,SCOPE]' a line), added to QSTORE_KEYS")
    auth.add_argument("--allowed-host", action="append", metavar="HOST",
                      help="a Host name a keyless server also answers (repeatable; loopback names always)")
    auth.add_argument("--allow-unauthenticated-remote", action="store_true",
                      help="serve a non-loopback address with no API key (anyone who can connect may write)")
    auth.add_argument("--tls-cert", help="PEM certificate chain; serves HTTPS with --tls-key")
    auth.add_argument("--tls-key", help="PEM private key for --tls-cert")
    limits = parser.add_argument_group("limits")
    for name, what in LIMIT_HELP.items():
        default = getattr(defaults, name)
        limits.add_argument("--" + name.replace("_", "-"), type=type(default), default=default,
                            help=what + " (default: %(default)s)")
    ops = parser.add_argument_group("operation")
    ops.add_argument("--job-workers", type=int, default=None,
                     help="threads running jobs (default: the runtime budget, QSTORE_JOB_WORKERS)")
    ops.add_argument("--shutdown-timeout", type=float, default=30.0,
                     help="seconds to let requests and jobs finish on SIGTERM (default: %(default)s)")
    ops.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    ops.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    stores = parser.add_argument_group("stores (docs/STORES.md)")
    stores.add_argument("--store", choices=["lmdb", "qdrant"], default="lmdb",
                        help="where new collections keep their records (default: %(default)s)")
    stores.add_argument("--qdrant-url", help="Qdrant deployment (http[s]://...; key in QSTORE_QDRANT_API_KEY) "
                        "or a directory for local mode; several servers may share one deployment")
    for flag, what in (("shards", "shard_number"), ("replicas", "replication_factor"),
                       ("write-consistency", "write_consistency_factor")):
        stores.add_argument(f"--qdrant-{flag}", type=int, default=None,
                            help=f"{what} of the Qdrant collections this server creates (a cluster)")


def add_serve_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register `serve` on the `qstore` command line; the parsed args go to `run_serve`."""
    parser = subparsers.add_parser("serve", help=SERVE_HELP, description=SERVE_HELP)
    add_serve_arguments(parser)
    parser.set_defaults(func=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = ServerConfig.from_args(args)
        config.check()
    except (ValueError, OSError) as exc:
        print(f"qstore serve: {exc}", file=sys.stderr)
        return 2
    run(serve(config))
    return 0


def run(main: Coroutine[Any, Any, None]) -> None:
    """On uvloop where it installs (Linux, macOS): a faster loop and transports for the many
    small requests a vector store serves."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve(config: ServerConfig, ready: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or until `stop` is set, when given), then drain requests,
    stop jobs and close the database. `ready(url)` runs once the socket accepts connections."""
    from aiohttp import web

    from .app import create_app  # the engine loads only once arguments and keys check out
    from .middleware import ProtocolRunner

    app = create_app(config)
    runner = ProtocolRunner(app, handle_signals=False, access_log=log if config.access_log else None,
                           shutdown_timeout=config.shutdown_timeout)
    await runner.setup()  # opens the database: ready only after this
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=config.ssl_context())
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"{config.scheme}://{host}:{port}"
        log.info("serving %s on %s (auth %s)", config.data_dir, url, "on" if config.auth_enabled else "off")
        if config.auth_enabled and not config.tls_cert and not is_loopback(config.host):
            log.warning("API keys travel in plain text: %s is not loopback and TLS is off "
                        "(use --tls-cert/--tls-key, or a TLS proxy in front)", config.host)
        (ready or (lambda u: print(f"listening on {u}", flush=True)))(url)
        # A daemon thread: a stop does not wait for the imports (asyncio's executor would, ~5 s).
        threading.Thread(target=warm_up_engine, name="qstore-warm-up", daemon=True).start()
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        runtime.shutdown()
        log.info("stopped; database closed")


def warm_up_engine() -> None:
    """Load the training engine (cirq, scipy, the numba kernels) in a thread once the server
    listens: health checks and reads answer at once, and the first job does not pay for it."""
    try:
        from qstore.circuits import warm_up

        warm_up()
    except Exception:  # a job that needs the engine will report the same failure
        log.exception("warming up the training engine failed")
