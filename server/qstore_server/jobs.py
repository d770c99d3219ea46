"""Long-running jobs (training, federated rounds, collection copies) off the event loop.

A job kind is a plain function `run(ctx, params) -> result` executed in a worker thread.
It reaches the engine through `ctx.call(coro)`, which runs the coroutine on the server's
event loop (where the engine lives) and waits for it; it reports progress with
`ctx.progress(...)` and stops cooperatively when `ctx.check_cancelled()` raises.
Job state lives in memory: a restart forgets jobs, never the data they wrote.

Bounds (server limits): at most `max_jobs` pending or running (then `too_many_requests`, 429),
`epochs` and `batch_size` params within `max_epochs` / `max_train_batch`, and a deadline of
`max_job_seconds` from the start request, after which the job is cancelled and fails with
`job_timeout`. A cancelled job also abandons the engine call or blocking work it is waiting on
(`ctx.call`, `ctx.run_abandonable`), so a job inside one long training step stops within
CANCEL_POLL_S, not at the step's end (the step's thread finishes it, and its result is dropped).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from qstore_client.api import QStoreAPI
from qstore_client.errors import Cancelled, QStoreError, error
from qstore_client.protocol import Limits

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.05
# Job params that size the work, and the limit on each.
PARAM_LIMITS = {"epochs": "max_epochs", "batch_size": "max_train_batch"}

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class JobKind:
    """`check(params)` runs when the job is started (in a thread), to refuse bad params at once."""

    name: str
    run: Callable[[JobContext, dict[str, Any]], Any]
    check: Callable[[dict[str, Any]], None] | None = None


@dataclass
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    state: str = "pending"
    progress: float = 0.0
    message: str = ""
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: Any = None
    error: QStoreError | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    timed_out: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "progress": self.progress,
                "message": self.message, "params": self.params, "created_at": self.created_at,
                "started_at": self.started_at, "finished_at": self.finished_at,
                "error": None if self.error is None else {"code": self.error.code, "message": self.error.message}}


class JobContext:
    """What a running job may touch: the engine (via `call`), its progress, its cancel flag."""

    def __init__(self, job: Job, db: QStoreAPI, loop: asyncio.AbstractEventLoop):
        self._job = job
        self._loop = loop
        self.db = db

    def call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run an engine coroutine on the server loop and wait for its result; on cancellation
        the coroutine is cancelled too (at its next await) and `Cancelled` raised at once."""
        return self._wait(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def run_abandonable(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking `fn(*args)` in a thread of its own and wait; on cancellation raise `Cancelled`
        at once, leaving the thread to stop at its own next check (e.g. a trainer's should_stop).
        The thread is a daemon, so a step it is still finishing does not hold up shutdown."""
        future: concurrent.futures.Future = concurrent.futures.Future()

        def target() -> None:
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to the waiting job, which reports it
                future.set_exception(exc)

        threading.Thread(target=target, name=f"qstore-job-{self._job.id[:8]}", daemon=True).start()
        return self._wait(future)

    def _wait(self, future: concurrent.futures.Future) -> Any:
        while True:
            try:
                return future.result(timeout=CANCEL_POLL_S)
            except concurrent.futures.TimeoutError:
                if self._job.cancel.is_set():
                    future.cancel()
                    raise Cancelled(f"job {self._job.id} was cancelled") from None

    def progress(self, fraction: float, message: str = "") -> None:
        self._job.progress = min(1.0, max(0.0, float(fraction)))
        self._job.message = message

    @property
    def cancelled(self) -> bool:
        return self._job.cancel.is_set()

    def check_cancelled(self) -> None:
        if self._job.cancel.is_set():
            raise Cancelled(f"job {self._job.id} was cancelled")


class JobRegistry:
    """Starts jobs on a bounded thread pool and keeps their status (the newest `history` of them)."""

    def __init__(self, db: QStoreAPI, kinds: tuple[JobKind, ...], workers: int, history: int = 1000,
                 limits: Limits | None = None):
        self.db = db
        self.kinds = {k.name: k for k in kinds}
        self.history = history
        self.limits = limits or Limits()
        self._jobs: dict[str, Job] = {}
        self._futures: dict[str, asyncio.Future] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qstore-job")

    async def start(self, kind: str, params: dict[str, Any] | None) -> Job:
        spec = self.kinds.get(kind)
        if spec is None:
            raise error("unknown_job_kind", f"no job kind {kind!r}; known: {sorted(self.kinds)}")
        params = params or {}
        for name, limit in PARAM_LIMITS.items():
            value = params.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                self.limits.check(limit, value, f"{kind}: {name}")
        loop = asyncio.get_running_loop()
        if spec.check is not None:  # off the loop: the first check imports the training engine (seconds)
            await loop.run_in_executor(None, spec.check, params)  # not the job pool: it may be full
        active = sum(job.state not in FINAL_STATES for job in self._jobs.values())
        if active >= self.limits.max_jobs:
            raise error("too_many_requests", f"{active} jobs are pending or running, the server limit "
                                             f"max_jobs={self.limits.max_jobs}; retry when one finishes")
        job = Job(id=uuid.uuid4().hex, kind=kind, params=params)
        self._forget_oldest()
        self._jobs[job.id] = job
        future = loop.run_in_executor(self._pool, self._run, spec, job, JobContext(job, self.db, loop))
        self._futures[job.id] = future
        deadline = loop.call_later(self.limits.max_job_seconds, self._expire, job)
        future.add_done_callback(lambda _: (self._futures.pop(job.id, None), deadline.cancel()))
        return job

    @staticmethod
    def _expire(job: Job) -> None:
        if job.state not in FINAL_STATES:
            job.timed_out = True
            job.cancel.set()

    @staticmethod
    def _run(spec: JobKind, job: Job, ctx: JobContext) -> None:
        if job.cancel.is_set():
            job.state, job.finished_at = ("failed" if job.timed_out else "cancelled"), time.time()
            if job.timed_out:
                job.error = error("job_timeout", f"job {job.id} passed its deadline before it started")
            return
        job.state, job.started_at = "running", time.time()
        try:
            job.result = spec.run(ctx, job.params)
            job.state, job.progress = "succeeded", 1.0
        except Cancelled as exc:
            if job.timed_out:
                job.state, job.error = "failed", error("job_timeout", f"job {job.id} passed its deadline")
            else:
                job.state, job.error = "cancelled", exc
        except QStoreError as exc:
            job.state, job.error = "failed", exc
        except Exception as exc:  # a job's bug must not take the server down
            log.exception("job %s (%s) failed", job.id, job.kind)
            job.state, job.error = "failed", error("job_failed", f"{type(exc).__name__}: {exc}")
        finally:
            job.finished_at = time.time()

    def _forget_oldest(self) -> None:
        done = [j for j in self._jobs.values() if j.state in FINAL_STATES]
        for job in done[: max(0, len(self._jobs) - self.history + 1)]:
            del self._jobs[job.id]

    def get(self, id: str) -> Job:
        job = self._jobs.get(id)
        if job is None:
            raise error("not_found", f"no job {id!r}")
        return job

    def list(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.created_at)

    def cancel(self, id: str) -> Job:
        job = self.get(id)
        job.cancel.set()
        return job

    def result(self, id: str) -> Any:
        job = self.get(id)
        if job.state == "succeeded":
            return job.result
        if job.error is not None:
            raise job.error
        raise error("conflict", f"job {id} is {job.state}; its result is not ready")

    def delete(self, id: str) -> None:
        job = self.get(id)
        if job.state not in FINAL_STATES:
            raise error("conflict", f"job {id} is {job.state}; cancel it first")
        del self._jobs[id]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(("pending", "running", *sorted(FINAL_STATES)), 0)
        for job in self._jobs.values():
            counts[job.state] += 1
        return counts

    async def close(self, timeout: float) -> None:
        """Cancel every job and wait (up to `timeout`) for workers, so the engine closes idle."""
        for job in self._jobs.values():
            job.cancel.set()
        pending = list(self._futures.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=timeout)
            if late:
                log.warning("%d job(s) ignored cancellation for %.0fs; closing anyway", len(late), timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
