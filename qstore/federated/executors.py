"""Where in-process participants' local training runs: threads here, or a Ray cluster.

An executor runs a plain synchronous function (``participant.train_local``) with
picklable arguments and hands back its result to the event loop. The coordinator
never blocks: it awaits the executor.

* ``InProcessExecutor`` (default): a thread pool in this process. NumPy releases the
  GIL in the simulator's tensor contractions, so participants overlap usefully.
* ``RayExecutor``: one Ray task per call, on a local or remote Ray cluster
  (``pip install 'qstore[ray]'``). Multi-machine use:

      # head node
      ray start --head --port=6379
      # every worker machine (with the same qstore installed)
      ray start --address=HEAD_IP:6379
      # the coordinator
      executor = RayExecutor(address="ray://HEAD_IP:10001")   # or "auto" on a cluster node
      participants = [LocalParticipant(shard, executor=executor) for shard in shards]

  Each participant's arrays travel to the worker that trains on them, so use it for
  participants whose data the cluster may hold (simulation, one organisation's
  cluster); independent organisations run their own servers and join by URL.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from qstore import runtime
from qstore.errors import error

log = logging.getLogger(__name__)

T = TypeVar("T")


@runtime_checkable
class Executor(Protocol):
    async def run(self, fn: Callable[..., T], *args: Any) -> T: ...

    async def close(self) -> None: ...


class InProcessExecutor:
    """Runs calls on a thread pool of `max_workers` threads (default: the runtime's job workers;
    each call's simulation runs on the shared compute pool)."""

    def __init__(self, max_workers: int | None = None):
        workers = max_workers or runtime.config().job_workers
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                           thread_name_prefix="qstore-federated")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, functools.partial(fn, *args))

    async def close(self) -> None:
        # Abandoned stragglers keep their thread until they finish; never wait for them here.
        self._pool.shutdown(wait=False, cancel_futures=True)


def _call(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


class RayExecutor:
    """Runs calls as Ray tasks. `address`: None starts a local Ray, "auto" joins the cluster this
    machine belongs to, "ray://HOST:10001" connects a Ray client; other kwargs go to ``ray.init``."""

    def __init__(self, address: str | None = None, num_cpus: float = 1, **init_options: Any):
        try:
            import ray
        except ImportError:
            raise error("unavailable", "the ray executor needs Ray: pip install 'qstore[ray]'") from None
        if num_cpus <= 0:
            raise error("invalid_argument", f"num_cpus must be positive, got {num_cpus}")
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            ray.init(address=address, **init_options)
            self._started = True
            log.info("ray executor connected to %s", address or "a new local cluster")
        self._remote = ray.remote(num_cpus=num_cpus)(_call)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._remote.remote(fn, *args)

    async def close(self) -> None:
        if self._started:
            self._ray.shutdown()
            self._started = False


def get_executor(executor: str | Executor | None = None, **options: Any) -> Executor:
    """``None``/``"inprocess"``, ``"ray"`` (options go to ``RayExecutor``) or a ready executor."""
    if executor is None or executor == "inprocess":
        return InProcessExecutor(**options)
    if executor == "ray":
        return RayExecutor(**options)
    if isinstance(executor, Executor):
        return executor
    raise error("invalid_argument", f"unknown executor {executor!r}; choose inprocess or ray")
