"""`qstore serve`: arguments, startup checks and the serve loop with graceful shutdown."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Callable

from qstore import runtime
from qstore_client.protocol import Limits

from .config import DEFAULT_PORT, ServerConfig

log = logging.getLogger("qstore_server")

SERVE_HELP = "Serve a data directory over HTTP (msgpack or JSON under /v1/, see docs/PROTOCOL.md)."
KEY_HELP = """\
authentication:
  Keys come from QSTORE_API_KEY (write keys, comma-separated) and QSTORE_READONLY_API_KEY,
  and/or from key files (one key per line, '#' comments). Clients send 'Authorization: Bearer KEY'.
  With no key configured the server only binds a loopback address, unless
  --allow-unauthenticated-remote is given."""


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
    auth.add_argument("--allow-unauthenticated-remote", action="store_true",
                      help="serve a non-loopback address with no API key (anyone who can connect may write)")
    auth.add_argument("--tls-cert", help="PEM certificate chain; serves HTTPS with --tls-key")
    auth.add_argument("--tls-key", help="PEM private key for --tls-cert")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help="largest request body (default: %(default)s)")
    limits.add_argument("--max-batch", type=int, default=defaults.max_batch,
                        help="most ids / vectors / queries in one request (default: %(default)s)")
    limits.add_argument("--max-dim", type=int, default=defaults.max_dim,
                        help="largest vector dimension (default: %(default)s)")
    limits.add_argument("--max-top-k", type=int, default=defaults.max_top_k,
                        help="largest top_k of a query (default: %(default)s)")
    ops = parser.add_argument_group("operation")
    ops.add_argument("--job-workers", type=int, default=None,
                     help="threads running jobs (default: the runtime budget, QSTORE_JOB_WORKERS)")
    ops.add_argument("--shutdown-timeout", type=float, default=30.0,
                     help="seconds to let requests and jobs finish on SIGTERM (default: %(default)s)")
    ops.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    ops.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")


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
    asyncio.run(serve(config))
    return 0


async def serve(config: ServerConfig, ready: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or until `stop` is set, when given), then drain requests,
    stop jobs and close the database. `ready(url)` runs once the socket accepts connections."""
    from aiohttp import web

    from .app import create_app  # the engine loads only once arguments and keys check out

    app = create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log=log if config.access_log else None,
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
        (ready or (lambda u: print(f"listening on {u}", flush=True)))(url)
        loop.run_in_executor(None, warm_up_engine)
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
