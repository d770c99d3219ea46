"""Real servers for the network tests: `python -m qstore_server` subprocesses on loopback."""
from __future__ import annotations

import json
import os
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

# Address space for servers run under a memory limit: the engine maps ~2.4 GiB at start
# (FAISS, numba, thread stacks), so this leaves room for real work but not for a request that
# allocates by a number the caller chose.
MEMORY_LIMIT = 6 * 2**30


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """One server subprocess on a free loopback port. ``wait=False`` returns at once (start
    several, then ``wait_healthy`` each, so they boot in parallel); ``stop()`` sends SIGTERM
    and returns the exit code; ``kill()`` is a SIGKILL, as a crashed machine.

    ``keys`` maps keys to their scopes ("read,federated"), passed as QSTORE_KEYS;
    ``memory_limit`` caps the process's address space (RLIMIT_AS, bytes), so that an
    allocation bug fails a test with MemoryError instead of exhausting the machine."""

    def __init__(self, data_dir: Path, *args: str, env: dict[str, str] | None = None,
                 write_key: str | None = None, read_key: str | None = None, https: bool = False,
                 port: int | None = None, wait: bool = True, keys: dict[str, str] | None = None,
                 memory_limit: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        self.key = write_key
        self.read_key = read_key
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("QSTORE_")}
        full_env.update(env or {})
        if write_key:
            full_env["QSTORE_API_KEY"] = write_key
        if read_key:
            full_env["QSTORE_READONLY_API_KEY"] = read_key
        if keys:
            full_env["QSTORE_KEYS"] = "; ".join(f"{key} {scopes}" for key, scopes in keys.items())
        self.memory_limit = memory_limit
        self.log = data_dir.with_suffix(".log")
        self._log_file = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qstore_server", "--data-dir", str(data_dir), "--host", "127.0.0.1",
             "--port", str(self.port), *args],
            stdout=self._log_file, stderr=subprocess.STDOUT, env=full_env,
            preexec_fn=self._limit_memory if memory_limit else None)
        if wait:
            self.wait_healthy()

    def _limit_memory(self) -> None:  # runs in the child, before exec
        resource.setrlimit(resource.RLIMIT_AS, (self.memory_limit, self.memory_limit))

    def wait_healthy(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                req = urllib.request.Request(self.url + "/v1/health", headers={"Accept": "application/json"})
                with urllib.request.urlopen(req, timeout=1, context=ssl._create_unverified_context()) as resp:
                    if json.loads(resp.read())["result"]["status"] == "ok":
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        raise RuntimeError(f"server not healthy after {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if not self._log_file.closed:
            self._log_file.close()
        return self.proc.returncode
