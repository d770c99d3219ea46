"""Job routes: start / status / progress / cancel / result, work off the event loop."""
from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestServer

from qstore_client import AsyncClient, Cancelled, Conflict, InvalidArgument, NotFound, QStoreError
from qstore_server import ServerConfig, create_app
from qstore_server.job_kinds import builtin_kinds
from qstore_server.jobs import JobContext, JobKind
from qstore_server.state import JOBS


async def test_copy_collection_job(server, name):
    async with AsyncClient(server.url, api_key=server.key) as client:
        assert "copy_collection" in await client.job_kinds()
        src = await client.create_collection(name, dim=4, metric="l2", index={"type": "flat"})
        x = np.random.default_rng(0).standard_normal((1200, 4)).astype(np.float32)
        ids = [f"id{i:05d}" for i in range(1200)]
        await src.upsert(ids, x, metadata=[{"i": i} for i in range(1200)])
        await src.superpose("sup", [(x[0], "a", 0.6), (x[1], "b", 0.8)], metadata={"kind": "sup"})
        job = await client.start_job("copy_collection", {"source": name, "target": name + "-copy"})
        assert job.kind == "copy_collection" and job.state in ("pending", "running", "succeeded")
        done = await client.wait_job(job.id, timeout=60)
        assert done.state == "succeeded" and done.progress == 1.0 and done.error is None
        assert await client.job_result(job.id) == {"source": name, "target": name + "-copy", "store": "lmdb",
                                                   "copied": 1201}
        dst = await client.collection(name + "-copy")
        assert (dst.dim, dst.metric) == (4, "l2") and await dst.count() == 1201
        a, b = await src.get(["sup", "id00777"]), await dst.get(["sup", "id00777"])
        assert [len(r.branches) for r in b] == [2, 1] and b[1].metadata == {"i": 777}
        assert all(np.array_equal(p.vector, q.vector) for p, q in zip(a, b))
        assert job.id in [j.id for j in await client.list_jobs()]
        await client.delete_job(job.id)
        with pytest.raises(NotFound):
            await client.job(job.id)


async def test_job_errors(server, name):
    async with AsyncClient(server.url, api_key=server.key) as client:
        with pytest.raises(InvalidArgument) as exc:
            await client.start_job("no_such_kind")
        assert exc.value.code == "unknown_job_kind"
        with pytest.raises(InvalidArgument) as exc:
            await client.start_job("copy_collection", {"source": name})
        assert exc.value.code == "missing_field"
        with pytest.raises(NotFound):
            await client.job("0" * 32)
        # A job that fails in its worker reports the engine's error, with its class and code.
        job = await client.start_job("copy_collection", {"source": name + "-absent", "target": name + "-t"})
        job = await client.wait_job(job.id, timeout=30)
        assert job.state == "failed" and job.error.code == "collection_not_found"
        with pytest.raises(NotFound) as exc:
            await client.job_result(job.id)
        assert exc.value.code == "collection_not_found"


def slow_kind(started: threading.Event) -> JobKind:
    """Counts to params["steps"], reporting progress, until cancelled; checks it runs off the loop."""

    def run(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
        try:
            asyncio.get_running_loop()
            raise AssertionError("a job must not run on the event loop")
        except RuntimeError:
            pass
        names = ctx.call(ctx.db.list_collections())  # engine calls go back to the loop
        started.set()
        for step in range(params["steps"]):
            ctx.check_cancelled()
            ctx.progress(step / params["steps"], f"step {step}")
            time.sleep(0.01)
        return {"steps": params["steps"], "collections": len(names)}

    return JobKind("count", run)


def failing_kind() -> JobKind:
    def run(ctx: JobContext, params: dict[str, Any]) -> None:
        raise ZeroDivisionError("boom")

    return JobKind("fail", run)


@pytest.fixture
async def job_server(tmp_path):
    started = threading.Event()
    config = ServerConfig(data_dir=tmp_path / "data", job_workers=1,
                          job_kinds=(*builtin_kinds(), slow_kind(started), failing_kind()))
    async with TestServer(create_app(config), host="127.0.0.1") as srv:
        async with AsyncClient(str(srv.make_url("")).rstrip("/")) as client:
            yield client, started


async def test_progress_cancel_and_queueing(job_server):
    client, started = job_server
    long = await client.start_job("count", {"steps": 100_000})
    queued = await client.start_job("count", {"steps": 5})  # one worker: waits its turn
    await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    await asyncio.sleep(0.1)
    status = await client.job(long.id)
    assert status.state == "running" and 0 < status.progress < 1 and status.message.startswith("step")
    assert (await client.job(queued.id)).state == "pending"
    with pytest.raises(Conflict):
        await client.job_result(long.id)
    with pytest.raises(Conflict):
        await client.delete_job(long.id)
    await client.cancel_job(long.id)
    status = await client.wait_job(long.id, timeout=10)
    assert status.state == "cancelled" and status.error.code == "cancelled"
    with pytest.raises(Cancelled):
        await client.job_result(long.id)
    assert await client.job_result((await client.wait_job(queued.id, timeout=10)).id) == {"steps": 5,
                                                                                         "collections": 0}


async def test_cancel_before_start_and_failure(job_server):
    client, _ = job_server
    blocker = await client.start_job("count", {"steps": 100_000})
    waiting = await client.start_job("count", {"steps": 3})
    await client.cancel_job(waiting.id)
    await client.cancel_job(blocker.id)
    assert (await client.wait_job(waiting.id, timeout=10)).state == "cancelled"
    assert (await client.wait_job(waiting.id, timeout=10)).started_at is None
    failed = await client.wait_job((await client.start_job("fail")).id, timeout=10)
    assert failed.state == "failed" and failed.error.code == "job_failed"
    assert "ZeroDivisionError" in failed.error.message
    with pytest.raises(QStoreError) as exc:
        await client.job_result(failed.id)
    assert exc.value.code == "job_failed"


async def test_shutdown_cancels_running_jobs(tmp_path):
    started = threading.Event()
    config = ServerConfig(data_dir=tmp_path / "data", job_kinds=(slow_kind(started),), shutdown_timeout=10)
    app = create_app(config)
    async with TestServer(app, host="127.0.0.1") as srv:
        async with AsyncClient(str(srv.make_url("")).rstrip("/")) as client:
            job = await client.start_job("count", {"steps": 10**9})
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
    assert app[JOBS].get(job.id).state == "cancelled"
