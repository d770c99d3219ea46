"""A small HTTP/1.1 keep-alive connection pool on asyncio streams.

The protocol needs one request shape (method, path, body, fixed headers) and one reply
shape (status, media type, bytes), so this skips what general clients do per request
(cookies, redirects, proxies, tracing). On a 2-core box that halves the client's CPU per
call (~130 us vs ~360 us with aiohttp's ClientSession for a 384-d query) and is the
difference between ~900 and ~1,150 sequential queries/s (benchmarks/SERVER.md).
"""
from __future__ import annotations

import asyncio
import select
import ssl as ssl_module
import sys
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from .errors import error

T = TypeVar("T")

MAX_HEAD_BYTES = 64 * 1024
NO_BODY_STATUSES = frozenset({204, 304})  # never a body, whatever the headers say (RFC 9110)


class TransportError(Exception):
    """The exchange failed below HTTP (connect, reset, timeout, malformed reply)."""


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: bytes
    location: str = ""  # a redirect's target, so the error can name it


async def within(timeout: float | None, work: Awaitable[T]) -> T:
    if timeout is None:
        return await work
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await work
    return await asyncio.wait_for(work, timeout)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()
        self.reusable = True

    def alive(self, idle_timeout: float) -> bool:
        idle = time.monotonic() - self.idle_since
        if self.reader.at_eof() or self.writer.is_closing() or idle >= idle_timeout or self.stray_bytes():
            return False
        # The loop may not have seen a close that arrived while it was busy elsewhere (say, a
        # server restarted within the second): an idle keep-alive connection with anything to
        # read is finished. One poll(2) a request; a POST on a dead connection is not retried.
        return not self._readable()

    def stray_bytes(self) -> bool:
        """Bytes already buffered past the reply: a server that sent more than it declared.
        Reusing the connection would read them as the next reply. (StreamReader has no public
        way to ask; its buffer is the only place they can be.)"""
        return bool(getattr(self.reader, "_buffer", b""))

    def _readable(self) -> bool:
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock.fileno()], [], [], 0)[0])

    def close(self) -> None:
        self.reusable = False
        self.writer.close()

    async def exchange(self, request: bytes) -> Reply:
        self.writer.write(request)
        while True:
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
                raise TransportError(f"not an HTTP/1.x reply: {lines[0][:80]!r}")
            status = int(rest[:3])
            if status >= 200:
                break  # skip 1xx interim replies
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if status in NO_BODY_STATUSES:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await self._chunked()
        elif "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        else:  # delimited by close
            body = await self.reader.read()
            self.reusable = False
        if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0" or self.stray_bytes():
            self.reusable = False
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        self.idle_since = time.monotonic()
        return Reply(status, content_type, body, headers.get("location", ""))

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


def check_header(name: str, value: str) -> None:
    """A header value must be one line of latin-1 (HTTP/1.1's rule); anything else could inject
    headers or fail mid-request. The message names the header, never its value (it may be a key)."""
    if any(c in value for c in "\r\n\0"):
        raise error("invalid_argument", f"{name}: a header value cannot hold CR, LF or NUL"
                                        + (" (check the API key)" if name == "Authorization" else ""))
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise error("invalid_argument", f"{name}: a header value must be latin-1 text"
                                        + (" (check the API key)" if name == "Authorization" else "")) from None


class Pool:
    """Keep-alive connections to one server: at most `max_connections` at once, reused LIFO,
    dropped after `idle_timeout` (well under servers' usual keep-alive of 60-75 s)."""

    def __init__(self, url: str, headers: dict[str, str], *, max_connections: int = 100,
                 connect_timeout: float = 10.0, idle_timeout: float = 15.0,
                 ssl: ssl_module.SSLContext | bool | None = None):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        if parts.username is not None or parts.password is not None:
            raise error("invalid_argument", "credentials in the URL (user:pass@) are not sent; "
                                            "pass the API key as api_key=")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ssl = self._ssl_context(parts.scheme, ssl)
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        host = f"[{self.host}]" if ":" in self.host else self.host
        fixed = {"Host": host if parts.port is None else f"{host}:{parts.port}", "User-Agent": "qstore-client",
                 **headers}
        for name, value in fixed.items():
            check_header(name, value)
        self._headers = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._idle: deque[Connection] = deque()
        self._slots = asyncio.Semaphore(max_connections)
        self._closed = False

    @staticmethod
    def _ssl_context(scheme: str, ssl: ssl_module.SSLContext | bool | None) -> ssl_module.SSLContext | None:
        if scheme == "http":
            return None
        if isinstance(ssl, ssl_module.SSLContext):
            return ssl
        context = ssl_module.create_default_context()
        if ssl is False:  # explicit opt-out of verification
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
        return context

    def _encode(self, method: str, target: str, body: bytes | None) -> bytes:
        length = f"Content-Length: {len(body)}\r\n" if body is not None else ""
        head = f"{method} {self.prefix}{target} HTTP/1.1\r\n{self._headers}{length}\r\n".encode("latin-1")
        return head + body if body else head

    async def _connect(self) -> Connection:
        reader, writer = await within(self.connect_timeout, asyncio.open_connection(
            self.host, self.port, ssl=self.ssl, limit=MAX_HEAD_BYTES,
            server_hostname=self.host if self.ssl else None))
        return Connection(reader, writer)

    async def request(self, method: str, target: str, body: bytes | None, timeout: float | None) -> Reply:
        if self._closed:
            raise TransportError("the client is closed")
        request = self._encode(method, target, body)
        async with self._slots:
            conn = None
            try:
                while self._idle and conn is None:
                    candidate = self._idle.pop()
                    if candidate.alive(self.idle_timeout):
                        conn = candidate
                    else:
                        candidate.close()

                async def exchange() -> Reply:
                    nonlocal conn
                    if conn is None:
                        conn = await self._connect()
                    return await conn.exchange(request)

                reply = await within(timeout, exchange())
            except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                    TimeoutError, asyncio.TimeoutError, TransportError) as exc:
                if conn is not None:
                    conn.close()
                raise TransportError(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__) from exc
            except BaseException:  # cancelled mid-exchange: the connection's state is unknown
                if conn is not None:
                    conn.close()
                raise
            assert conn is not None  # set before the exchange that returned `reply`
            if conn.reusable and not self._closed:
                self._idle.append(conn)
            else:
                conn.close()
            return reply

    async def close(self) -> None:
        self._closed = True
        writers = [c.writer for c in self._idle]
        self._idle.clear()
        for writer in writers:
            writer.close()
        for writer in writers:
            try:
                await writer.wait_closed()
            except (OSError, ssl_module.SSLError):
                pass
