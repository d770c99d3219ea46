"""Fixtures for the network tests: a shared keyed server and a way to start others."""
from __future__ import annotations

import uuid

import pytest

from tests.servers import ServerProcess

WRITE_KEY = "test-write-key-0123456789"
READ_KEY = "test-read-key-9876543210"
# Test modules reach these through fixtures: `from conftest import` would pick up whichever
# tests/*/conftest.py was imported last when the whole suite runs.


@pytest.fixture(scope="session")
def server_process() -> type[ServerProcess]:
    """The class, to start servers with other options (call `.stop()` when done)."""
    return ServerProcess


@pytest.fixture(scope="session")
def keys() -> tuple[str, str]:
    """(write key, read-only key) of the servers started with keys."""
    return WRITE_KEY, READ_KEY


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory):
    """A shared server with a write key and a read-only key; tests use unique names on it."""
    srv = ServerProcess(tmp_path_factory.mktemp("server") / "data", write_key=WRITE_KEY, read_key=READ_KEY)
    yield srv
    assert srv.stop() == 0, srv.log.read_text()


@pytest.fixture
def name() -> str:
    """A collection / id name no other test uses (the shared server outlives tests)."""
    return f"t{uuid.uuid4().hex[:12]}"
