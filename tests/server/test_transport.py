"""The client's HTTP/1.1 transport against scripted peers: reuse, framing, timeouts, retries."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import msgpack
import pytest

from qstore_client import AsyncClient, InvalidArgument, QStoreError, Unavailable
from qstore_client.transport import Pool

OK = msgpack.packb({"result": ["a", "b"]})


def reply(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", "Content-Type: application/msgpack", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class Peer:
    """A loopback HTTP peer answering each request with the next scripted reply (None: say nothing)."""

    def __init__(self, script: list[bytes | None | Callable[[], bytes]]):
        self.script = list(script)
        self.connections = 0
        self.requests: list[bytes] = []
        self.tasks: set[asyncio.Task] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.tasks.add(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length")), 0)
                self.requests.append(head + await reader.readexactly(length))
                answer = self.script.pop(0) if self.script else reply(200, OK)
                if answer is None:
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client hung up, or the test is over
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def test_connections_are_reused_and_headers_sent():
    peer = Peer([])
    async with peer as url, AsyncClient(url, api_key="k3y") as client:
        for _ in range(5):
            assert await client.list_collections() == ["a", "b"]
    assert peer.connections == 1 and len(peer.requests) == 5
    first = peer.requests[0].decode()
    assert first.startswith("GET /v1/collections HTTP/1.1\r\n")
    assert "Authorization: Bearer k3y\r\n" in first and "Accept: application/msgpack\r\n" in first


async def test_chunked_close_delimited_and_interim_replies():
    body = msgpack.packb({"result": ["chunked"]})
    chunked = reply(200, f"{3:x}\r\n".encode() + body[:3] + b"\r\n" + f"{len(body) - 3:x}\r\n".encode()
                    + body[3:] + b"\r\n0\r\n\r\n", "Transfer-Encoding: chunked")
    peer = Peer([b"HTTP/1.1 100 Continue\r\n\r\n" + chunked,
                 reply(200, msgpack.packb({"result": ["closing"]}), "Connection: close"),
                 reply(200, OK)])
    async with peer as url, AsyncClient(url) as client:
        assert await client.list_collections() == ["chunked"]
        assert await client.list_collections() == ["closing"]
        assert await client.list_collections() == ["a", "b"]
    assert peer.connections == 2


async def test_reads_retry_on_503_and_timeouts_but_writes_do_not():
    busy = reply(503, msgpack.packb({"error": {"code": "unavailable", "message": "busy"}}))
    peer = Peer([busy, None, reply(200, OK)])
    async with peer as url, AsyncClient(url, timeout=0.3, retries=3, backoff=0.01) as client:
        assert await client.list_collections() == ["a", "b"]  # 503, timeout, then success
    assert len(peer.requests) == 3
    peer = Peer([None])
    async with peer as url, AsyncClient(url, timeout=0.3, retries=3, backoff=0.01) as client:
        col_args = {"name": "c", "dim": 2}
        with pytest.raises(Unavailable):
            await client.create_collection(**col_args)
    assert len(peer.requests) == 1  # a write that may have been applied is never resent


async def test_error_replies_and_non_protocol_errors():
    peer = Peer([reply(400, msgpack.packb({"error": {"code": "invalid_filter", "message": "bad"}})),
                 reply(502, b"<html>bad gateway</html>", "Content-Type: text/html"),
                 b"SMTP ready\r\n\r\n"])
    async with peer as url, AsyncClient(url, retries=0) as client:
        with pytest.raises(InvalidArgument) as exc:
            await client.list_collections()
        assert exc.value.code == "invalid_filter" and exc.value.message == "bad"
        with pytest.raises(QStoreError) as exc:
            await client.list_collections()
        assert exc.value.code == "backend_error" and "bad gateway" in exc.value.message
        with pytest.raises(Unavailable):
            await client.list_collections()


async def test_refused_connection_is_unavailable():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with AsyncClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01) as client:
        with pytest.raises(Unavailable):
            await client.list_collections()


def test_url_validation():
    with pytest.raises(ValueError):
        Pool("ftp://host", {})
    pool = Pool("https://example.org:9443/base/", {})
    assert (pool.host, pool.port, pool.prefix) == ("example.org", 9443, "/base") and pool.ssl is not None


# ---------------------------------------------------------------- misbehaving peers (issue 12, item 8)

@pytest.mark.parametrize("key", ["k\r\nX-Injected: 1", "k\nX: 1", "k\0", "ключ"],
                         ids=["crlf", "lf", "nul", "not latin-1"])
async def test_api_key_that_would_break_the_header_is_refused(key):
    with pytest.raises(InvalidArgument) as exc:
        AsyncClient("http://127.0.0.1:1", api_key=key)
    assert "API key" in exc.value.message and key not in exc.value.message  # names the problem, not the key


async def test_credentials_in_the_url_are_refused_not_sent():
    with pytest.raises(InvalidArgument) as exc:
        AsyncClient("http://user:secret@127.0.0.1:1")
    assert "api_key" in exc.value.message and "secret" not in exc.value.message
    pool = Pool("http://[::1]:8470", {})
    assert "Host: [::1]:8470\r\n" in pool._encode("GET", "/x", None).decode()


async def test_no_body_statuses_do_not_wait_for_a_body():
    """204 and 304 have no body even without Content-Length: the reply ends at its head."""
    for status in (204, 304):
        peer = Peer([f"HTTP/1.1 {status} X\r\nContent-Type: application/msgpack\r\n\r\n".encode(), reply(200, OK)])
        async with peer as url, AsyncClient(url, timeout=5, retries=0) as client:
            with pytest.raises(QStoreError):  # no result in an empty reply
                await client.list_collections()
            assert await client.list_collections() == ["a", "b"]  # and the connection was reusable
        assert peer.connections == 1


async def test_redirect_is_a_clear_error():
    peer = Peer([reply(301, b"", "Location: https://elsewhere.example/v1/collections")])
    async with peer as url, AsyncClient(url, retries=0) as client:
        with pytest.raises(InvalidArgument) as exc:
            await client.list_collections()
    assert "redirected (HTTP 301)" in exc.value.message and "https://elsewhere.example" in exc.value.message


async def test_stray_bytes_after_a_reply_are_not_read_as_the_next_reply():
    """A peer that sends a second, unasked-for reply after the first: the connection is dropped."""
    stray = reply(200, msgpack.packb({"result": ["stray"]}))
    peer = Peer([reply(200, OK) + stray, reply(200, msgpack.packb({"result": ["fresh"]}))])
    async with peer as url, AsyncClient(url, retries=0) as client:
        assert await client.list_collections() == ["a", "b"]
        assert await client.list_collections() == ["fresh"]
    assert peer.connections == 2
