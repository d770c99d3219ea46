"""The client stands alone: msgpack and numpy only (its HTTP is asyncio streams), never the engine or
its native libraries."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
ENGINE_ONLY = ["faiss", "cirq", "cirq_ionq", "lmdb", "qstore", "qstore_server", "numba", "prometheus_client",
               "aiohttp"]

CLIENT_SCRIPT = """
import sys

BLOCKED = set(sys.argv[3].split(","))
KEY = sys.argv[4]


class Block:
    # Fail any import of the engine side, as on a machine where it is not installed.
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)")


sys.meta_path.insert(0, Block())

import asyncio
import numpy as np
import qstore_client


async def main(url, name):
    async with qstore_client.AsyncClient(url, api_key=KEY) as client:
        col = await client.create_collection(name, dim=3, index={"type": "flat"})
        await col.upsert(["a", "b"], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32), metadata=[{"x": 1}, None])
        hits = await col.query(np.array([1, 0.1, 0], dtype=np.float32), top_k=1)
        assert isinstance(hits[0], qstore_client.Hit) and hits[0].id == "a", hits
        await col.superpose("s", [(np.ones(3), "c", 1j)])
        m = await col.measure("s", seed=0)
        assert isinstance(m, qstore_client.Measurement) and m.context == "c"
        try:
            await client.collection(name + "-missing")
        except qstore_client.NotFound as exc:
            assert exc.code == "collection_not_found"
        else:
            raise AssertionError("expected NotFound")
        await client.drop_collection(name)


asyncio.run(main(sys.argv[1], sys.argv[2]))
loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
assert not loaded, loaded
print("client alone OK")
"""


def test_client_works_with_the_engine_unimportable(server, name, tmp_path):
    script = tmp_path / "client_alone.py"
    script.write_text(CLIENT_SCRIPT)
    out = subprocess.run([sys.executable, str(script), server.url, name, ",".join(ENGINE_ONLY), server.key],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "client alone OK" in out.stdout


def test_client_package_declares_only_its_two_dependencies():
    meta = tomllib.loads((REPO / "client" / "pyproject.toml").read_text())
    deps = sorted(d.split(">")[0].split("=")[0].split("<")[0].strip() for d in meta["project"]["dependencies"])
    assert deps == ["msgpack", "numpy"]
    sources = list((REPO / "client" / "qstore_client").glob("*.py"))
    assert {p.name for p in sources} >= {"__init__.py", "client.py", "protocol.py", "errors.py", "types.py"}
    for path in sources:
        imports = [line.split()[1] for line in path.read_text().splitlines()
                   if line.startswith(("import ", "from ")) and not line.startswith("from .")]
        roots = {i.split(".")[0] for i in imports}
        allowed = {"__future__", "msgpack", "numpy", "asyncio", "base64", "collections", "dataclasses",
                   "json", "math", "re", "select", "ssl", "sys", "time", "typing", "urllib"}
        assert roots <= allowed, (path.name, roots - allowed)


@pytest.mark.slow
def test_pip_install_client_alone_into_a_clean_venv(tmp_path, server, name):
    """`pip install ./client` in an empty venv gives a working client (needs a package index)."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", str(REPO / "client")],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr
    frozen = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True, text=True).stdout.lower()
    assert not any(mod in frozen for mod in ("faiss", "cirq", "lmdb", "prometheus", "aiohttp"))
    script = tmp_path / "client_alone.py"
    script.write_text(CLIENT_SCRIPT)
    out = subprocess.run([str(python), str(script), server.url, name, ",".join(ENGINE_ONLY), server.key],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
