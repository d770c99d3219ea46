"""The web console: `GET /ui/` serves the static single-page app in `qstore_server/ui/`.

The page is plain files (HTML, one ES module, CSS and the vendored uPlot), shipped as package
data; it talks to the JSON protocol under /v1/ like any client, with the user's key. These
routes carry no data and need no key; a Content-Security-Policy keeps the page to this origin.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from qstore_client.errors import error

STATIC = Path(__file__).with_name("ui")
# Route names the auth middleware lets through without a key (they are not protocol operations).
CONSOLE_ROUTES = frozenset({"console", "console_file", "console_redirect"})
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".txt": "text/plain",
         ".md": "text/plain"}


def _files() -> dict[str, Path]:
    """Every servable file by its URL path under /ui/; nothing outside this list is ever opened."""
    return {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file() and p.suffix in TYPES}


def setup_console(app: web.Application) -> None:
    files = _files()

    def serve(name: str) -> web.StreamResponse:
        path = files.get(name)
        if path is None:
            raise error("not_found", f"no console file {name!r}")
        return web.FileResponse(path, headers={**HEADERS, "Content-Type": TYPES[path.suffix] + "; charset=utf-8"})

    async def index(request: web.Request) -> web.StreamResponse:
        return serve("index.html")

    async def file(request: web.Request) -> web.StreamResponse:
        return serve(request.match_info["file"])

    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=308, headers={"Location": "/ui/"})

    app.router.add_get("/ui", redirect, name="console_redirect")
    app.router.add_get("/ui/", index, name="console")
    app.router.add_get("/ui/{file:.+}", file, name="console_file")
