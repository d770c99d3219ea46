"""`qstore serve` / `python -m qstore_server`: arguments, keys, binding rules, TLS, shutdown, metrics."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from qstore_client import AsyncClient, Forbidden, NotFound, Unauthorized, Unavailable
from qstore_server import ServerConfig, create_app
from qstore_server.cli import add_serve_arguments, add_serve_parser, run_serve, serve
from qstore_server.state import METRICS


def test_help_lists_every_option():
    out = subprocess.run([sys.executable, "-m", "qstore_server", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--data-dir", "--host", "--port", "--api-key-file", "--readonly-key-file", "--tls-cert",
                 "--tls-key", "--allow-unauthenticated-remote", "--max-body-bytes", "--max-batch", "--max-dim",
                 "--max-top-k", "QSTORE_API_KEY", "QSTORE_READONLY_API_KEY"):
        assert flag in out.stdout, flag


def test_serve_subcommand_plugs_into_a_parent_parser(tmp_path):
    parser = argparse.ArgumentParser(prog="qstore")
    add_serve_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--data-dir", str(tmp_path), "--port", "9999", "--max-top-k", "50"])
    assert args.func is run_serve and args.port == 9999
    config = ServerConfig.from_args(args, {"QSTORE_API_KEY": "a, b", "QSTORE_READONLY_API_KEY": "r",
                                           "QSTORE_KEYS": "c read,federated; d write"})
    assert config.keys == {"a": {"admin"}, "b": {"admin"}, "r": {"read"}, "c": {"read", "federated"},
                           "d": {"write"}}
    assert config.limits.max_top_k == 50
    assert parser.parse_args(["serve", "--data-dir", "d"]).port == 8470


def test_refuses_remote_bind_without_a_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "qstore_server", "--data-dir", str(tmp_path / "d"),
                          "--host", "0.0.0.0"], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"})
    assert out.returncode == 2 and "QSTORE_API_KEY" in out.stderr
    assert not (tmp_path / "d").exists()  # refused before touching the data directory


def test_binding_rules():
    data = Path("unused")
    with pytest.raises(ValueError, match="QSTORE_API_KEY"):
        ServerConfig(data_dir=data, host="0.0.0.0").check()
    ServerConfig(data_dir=data, host="0.0.0.0", allow_unauthenticated_remote=True).check()
    ServerConfig(data_dir=data, host="0.0.0.0", keys={"k": frozenset({"admin"})}).check()
    ServerConfig(data_dir=data, host="0.0.0.0", keys={"k": frozenset({"read"})}).check()
    for host in ("127.0.0.1", "::1", "localhost", "127.8.9.10"):
        ServerConfig(data_dir=data, host=host).check()
    with pytest.raises(ValueError, match="both"):
        ServerConfig(data_dir=data, tls_cert=Path("c.pem")).check()


@contextlib.asynccontextmanager
async def serving(config: ServerConfig) -> AsyncIterator[str]:
    """`serve()` in this process until the block ends; yields its URL."""
    stop, started = asyncio.Event(), asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(config, ready=started.set_result, stop=stop))
    url = await asyncio.wait_for(asyncio.shield(started), 60)
    try:
        yield url
    finally:
        stop.set()
        await task


async def test_key_files(tmp_path):
    (tmp_path / "keys").write_text("# write keys\nfirst-key\n\nsecond-key\n")
    (tmp_path / "ro").write_text("reader-key\n")
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--data-dir", str(tmp_path / "data"), "--port", "0", "--api-key-file",
                              str(tmp_path / "keys"), "--readonly-key-file", str(tmp_path / "ro")])
    async with serving(ServerConfig.from_args(args, {})) as url:
        for key in ("first-key", "second-key"):
            async with AsyncClient(url, api_key=key) as client:
                await client.create_collection(key, dim=2)
        async with AsyncClient(url, api_key="reader-key") as client:
            assert await client.list_collections() == ["first-key", "second-key"]
            with pytest.raises(Forbidden):
                await client.drop_collection("first-key")
        async with AsyncClient(url, api_key="# write keys") as client:
            with pytest.raises(Unauthorized):
                await client.list_collections()


async def test_graceful_shutdown_keeps_every_acknowledged_write(tmp_path, server_process):
    data = tmp_path / "data"
    srv = server_process(data)
    x = np.random.default_rng(1).standard_normal((500, 8)).astype(np.float32)
    async with AsyncClient(srv.url) as client:
        col = await client.create_collection("keep", dim=8, index={"type": "hnsw"})
        await col.upsert([f"v{i}" for i in range(500)], x)
        await client.put_state("psi", np.array([0.6, 0.8j]))
        assert srv.stop() == 0
        log = srv.log.read_text()
        assert log.count("listening on http://127.0.0.1:") == 1 and "database closed" in log
        srv = server_process(data, port=srv.port)
        try:
            # The same client: its pooled connection died with the old process; a write still works.
            await col.upsert(["after-restart"], x[:1])
            assert await col.count() == 501
            assert (await col.query(x[123], top_k=1))[0].id == "v123"
            assert np.allclose(await client.get_state("psi"), [0.6, 0.8j])
        finally:
            assert srv.stop() == 0
    async with AsyncClient(srv.url, retries=1, backoff=0.01) as client:
        with pytest.raises(Unavailable):
            await client.list_collections()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")
async def test_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    config = ServerConfig(data_dir=tmp_path / "data", port=0, tls_cert=cert, tls_key=key)
    async with serving(config) as url:
        assert url.startswith("https://127.0.0.1:")
        trust = ssl.create_default_context(cafile=str(cert))
        async with AsyncClient(url, ssl=trust) as client:
            col = await client.create_collection("secure", dim=2)
            await col.upsert(["a"], np.array([[1.0, 0.0]]))
            assert await col.count() == 1
        async with AsyncClient(url, retries=0) as client:  # an untrusted certificate is refused
            with pytest.raises(Unavailable):
                await client.list_collections()
        async with AsyncClient(url.replace("https", "http"), retries=0) as client:  # plain HTTP is not served
            with pytest.raises(Unavailable):
                await client.list_collections()


async def test_metrics(tmp_path, name):
    config = ServerConfig(data_dir=tmp_path / "data")
    app = create_app(config)
    async with TestServer(app, host="127.0.0.1") as srv:
        async with AsyncClient(str(srv.make_url("")).rstrip("/")) as client:
            col = await client.create_collection(name, dim=3, index={"type": "flat"})
            await col.upsert(["a", "b", "c"], np.eye(3))
            await col.delete(["c"])
            await col.query(np.ones(3), top_k=2)
            with pytest.raises(NotFound):
                await client.collection("missing")
            text = await client.metrics()
    assert 'qstore_requests_total{method="POST",route="query",status="200"} 1.0' in text
    assert 'qstore_request_duration_seconds_bucket{le="0.25",route="upsert"} 1.0' in text
    assert 'qstore_errors_total{code="collection_not_found"} 1.0' in text
    assert f'qstore_records{{collection="{name}"}} 2.0' in text
    assert f'qstore_index_vectors{{collection="{name}"}}' in text
    assert "qstore_collections 1.0" in text and 'qstore_jobs{state="running"} 0.0' in text
    # Each app has its own registry: a second app starts from zero.
    assert create_app(config)[METRICS].registry is not app[METRICS].registry


def test_scoped_key_file(tmp_path):
    (tmp_path / "scoped").write_text("# coordinator\ncoord-key federated\nops-key admin, federated\n")
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(["--data-dir", str(tmp_path), "--keys-file", str(tmp_path / "scoped")])
    config = ServerConfig.from_args(args, {"QSTORE_API_KEY": "ops-key"})
    assert config.keys == {"coord-key": {"federated"}, "ops-key": {"admin", "federated"}}
    for bad in ("k reader", "k"):
        with pytest.raises(ValueError, match="scope"):
            ServerConfig.from_args(args, {"QSTORE_KEYS": bad})
