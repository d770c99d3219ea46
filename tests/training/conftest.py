"""Fixtures for the training tests: a fast database, reference datasets, a real server subprocess."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from functools import lru_cache
from pathlib import Path

import pytest

import qstore
from qstore.training.reference_datasets import ReferenceData, load_reference


@pytest.fixture
async def fastdb(tmp_path):
    """sync=False: these tests check training, not durability."""
    database = await qstore.Database.open(str(tmp_path / "train"), sync=False, sweep_interval=None)
    yield database
    await database.close()


@lru_cache(maxsize=None)
def _reference(name: str, components: int | None) -> ReferenceData:
    return load_reference(name, components, seed=0)


@pytest.fixture
def reference():
    """``reference(name, components=4)``: a cached 70/30 split of a bundled scikit-learn dataset."""
    return lambda name, components=4: _reference(name, components)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m qstore_server`` on loopback with a free port; SIGTERM on stop."""

    def __init__(self, data_dir: Path):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data_dir.with_suffix(".log")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QSTORE_")}
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "qstore_server", "--data-dir", str(data_dir),
                                      "--host", "127.0.0.1", "--port", str(self.port)],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log.read_text()}")
            try:
                req = urllib.request.Request(self.url + "/v1/health", headers={"Accept": "application/json"})
                with urllib.request.urlopen(req, timeout=1) as resp:
                    if json.loads(resp.read())["result"]["status"] == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise RuntimeError(f"server not healthy:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = Server(tmp_path_factory.mktemp("train-server") / "data")
    yield srv
    assert srv.stop() == 0, srv.log.read_text()
