"""A bare aiohttp server that answers every POST with the same fixed body (for benchmarks/server.py).

    python benchmarks/tools/http_floor.py PORT REPLY_BYTES

A round trip to it through qstore_client's transport is the floor under every server query:
aiohttp's parsing and writing, the event loop, loopback TCP and the client's HTTP, with no
protocol, validation, auth, metrics or search. It runs on uvloop where that installs, as the
server does.
"""
from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("port", type=int, help="loopback port to listen on")
    parser.add_argument("reply_bytes", type=int, help="size of the body every POST gets")
    return parser.parse_args()


async def serve(port: int, reply: bytes) -> None:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=reply, content_type="application/msgpack")

    async def health(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/v1/health", health)
    app.router.add_post("/{path:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    args = parse_args()
    main = serve(args.port, b"\0" * args.reply_bytes)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
