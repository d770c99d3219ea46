"""One thread budget (``qstore.runtime``), executors passed in rather than owned by backends,
and no engine work at import: ``qstore --help``, ``qstore export`` and a starting server never
load cirq, numba or scipy, and importing the simulator runs nothing until ``warm_up()``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import qstore
from qstore import runtime
from qstore.circuits import CircuitSpec, StatevectorBackend
from qstore_client.errors import QStoreError

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ("cirq", "numba", "scipy", "sympy", "dp_accounting", "qstore.training.trainer", "qstore.circuits")


@pytest.mark.parametrize("cores", [8, 12, 16, 64])
def test_default_budget_sums_to_the_cores(cores: int) -> None:
    c = runtime.RuntimeConfig.for_cores(cores)
    assert c.storage_threads + c.compute_threads + c.omp_threads + c.job_workers == cores


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_small_machines_keep_a_floor(cores: int) -> None:
    c = runtime.RuntimeConfig.for_cores(cores)
    assert (c.storage_threads, c.compute_threads, c.omp_threads, c.job_workers) >= (2, 1, 1, 2)


def test_environment_overrides_and_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QSTORE_COMPUTE_THREADS", "3")
    assert runtime.RuntimeConfig.from_environment().compute_threads == 3
    monkeypatch.setenv("QSTORE_JOB_WORKERS", "many")
    with pytest.raises(QStoreError) as info:
        runtime.RuntimeConfig.from_environment()
    assert info.value.code == "invalid_argument"


def test_configure_refuses_bad_settings_and_changes_nothing() -> None:
    before = runtime.config()
    for bad in ({"compute_threads": 0}, {"gpu_threads": 2}, {"job_workers": True}):
        with pytest.raises(QStoreError) as info:
            runtime.configure(**bad)
        assert info.value.code == "invalid_argument"
        assert runtime.config() == before


def test_backends_share_the_compute_pool_and_own_no_threads(rng: np.random.Generator) -> None:
    spec = CircuitSpec(3, 2)
    X, theta = rng.uniform(0, 1, (64, 3)), rng.uniform(-1, 1, spec.n_params)
    before = {t.ident for t in threading.enumerate()}
    for _ in range(5):
        StatevectorBackend(chunk_size=8, threads=2).expectations(spec, X, theta)
    new = [t.name for t in threading.enumerate() if t.ident not in before]
    assert all(name.startswith("qstore-compute") for name in new), new
    assert len(new) <= runtime.config().compute_threads
    assert runtime.compute_pool() is runtime.compute_pool()


def test_an_executor_passed_in_runs_the_chunks(rng: np.random.Generator) -> None:
    spec = CircuitSpec(3, 2)
    X, theta = rng.uniform(0, 1, (64, 3)), rng.uniform(-1, 1, spec.n_params)
    seen: set[str] = set()

    def record(b0: int) -> None:
        seen.add(threading.current_thread().name)

    with ThreadPoolExecutor(2, thread_name_prefix="given") as pool:
        backend = StatevectorBackend(chunk_size=8, threads=2, executor=pool)
        original = backend._map

        def spy(fn, chunks):  # wraps the chunk function to see which thread runs it
            return original(lambda b0, b1: (record(b0), fn(b0, b1))[1], chunks)

        backend._map = spy  # type: ignore[method-assign]
        got = backend.expectations(spec, X, theta)
    np.testing.assert_allclose(got, StatevectorBackend(threads=1).expectations(spec, X, theta), atol=1e-12)
    assert seen and all(name.startswith("given") for name in seen)


def _python(code: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "server"), str(ROOT / "client")]))
    result = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


LOADED = f"import json, sys; print(json.dumps(sorted(m for m in {ENGINE!r} if m in sys.modules)))"


def test_command_help_and_server_start_load_no_engine() -> None:
    code = ("import sys\nfrom qstore_server.command import main\nsys.argv = ['qstore', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import qstore_server.app, qstore_server.job_kinds\nqstore_server.job_kinds.builtin_kinds()\n" + LOADED)
    assert json.loads(_python(code)) == []


async def test_export_loads_no_engine(tmp_path: Path) -> None:
    data = tmp_path / "db"
    async with await qstore.Database.open(str(data)) as db:
        col = await db.create_collection("c", dim=4, index={"type": "flat"})
        await col.upsert([str(i) for i in range(20)], np.random.default_rng(0).normal(size=(20, 4)))
    out = tmp_path / "c.jsonl"
    code = ("import sys\nfrom qstore_server.command import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n" + LOADED)
    loaded = _python(code.replace("main()", f"sys.argv = ['qstore', 'export', {str(out)!r}, '--data-dir', "
                                            f"{str(data)!r}, '--collection', 'c']; main()"))
    assert json.loads(loaded) == []
    assert len(out.read_text().splitlines()) == 1 + 20  # the collection's settings, then the records


def test_importing_the_simulator_runs_nothing_until_warm_up() -> None:
    code = ("import qstore.circuits.statevector as sv\nbefore = sv._warm\nsv.warm_up()\n"
            "print(before, sv._warm)")
    assert _python(code) == "False True"
