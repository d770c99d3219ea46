"""One thread budget for the process: the storage pool, the simulator's compute pool, FAISS's
OpenMP team and the server's job workers are sized here together, so they do not oversubscribe
the cores when they all run at once.

Defaults split the cores in four equal shares (from 8 cores up they sum to the core count).
Below that each keeps a floor: two storage readers and two job workers (so one long read or job
never blocks the rest) and one simulation and one OpenMP thread. Override with
``configure(...)`` before the first use, or with the environment variables
``QSTORE_STORAGE_THREADS``, ``QSTORE_COMPUTE_THREADS``, ``QSTORE_OMP_THREADS`` and
``QSTORE_JOB_WORKERS``.

Nothing here starts at import: the compute pool is created on first use and ``shutdown()``
ends it. Loading the training engine is ``qstore.circuits.warm_up()``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from qstore.errors import error

log = logging.getLogger(__name__)

_ENV = {"storage_threads": "QSTORE_STORAGE_THREADS", "compute_threads": "QSTORE_COMPUTE_THREADS",
        "omp_threads": "QSTORE_OMP_THREADS", "job_workers": "QSTORE_JOB_WORKERS"}


@dataclass(frozen=True)
class RuntimeConfig:
    """Threads per consumer: LMDB reads and searches, simulation chunks (numba kernels),
    FAISS's OpenMP team for batch searches, and server jobs."""

    storage_threads: int
    compute_threads: int
    omp_threads: int
    job_workers: int

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise error("invalid_argument", f"{f.name} must be a positive integer, got {value!r}")

    @classmethod
    def for_cores(cls, cores: int) -> RuntimeConfig:
        share = max(1, cores // 4)
        return cls(storage_threads=max(2, cores - 3 * share), compute_threads=share, omp_threads=share,
                   job_workers=max(2, share))

    @classmethod
    def from_environment(cls) -> RuntimeConfig:
        base = cls.for_cores(os.cpu_count() or 1)
        overrides = {}
        for name, var in _ENV.items():
            raw = os.environ.get(var)
            if raw:
                try:
                    overrides[name] = int(raw)
                except ValueError:
                    raise error("invalid_argument", f"{var} must be an integer, got {raw!r}") from None
        return dataclasses.replace(base, **overrides)


_lock = threading.Lock()
_config: RuntimeConfig | None = None
_compute: ThreadPoolExecutor | None = None


def config() -> RuntimeConfig:
    """The process's budget (from the environment on first use)."""
    global _config
    with _lock:
        if _config is None:
            _config = RuntimeConfig.from_environment()
        return _config


def configure(**threads: int) -> RuntimeConfig:
    """Replace parts of the budget, e.g. ``configure(compute_threads=4)``. A compute pool already
    running is shut down and the next use starts one of the new size."""
    global _config
    current = config()
    unknown = set(threads) - set(_ENV)
    if unknown:
        raise error("invalid_argument", f"unknown runtime settings {sorted(unknown)}; known: {sorted(_ENV)}")
    new = dataclasses.replace(current, **threads)
    with _lock:
        _config = new
    if new.compute_threads != current.compute_threads:
        shutdown()
    return new


def compute_pool() -> ThreadPoolExecutor:
    """The shared pool that runs simulation chunks (``compute_threads`` workers)."""
    global _compute
    workers = config().compute_threads
    with _lock:
        if _compute is None:
            _compute = ThreadPoolExecutor(workers, thread_name_prefix="qstore-compute")
            log.debug("compute pool: %d threads", workers)
        return _compute


def shutdown() -> None:
    """End the compute pool (waiting for running chunks); a later use starts a new one."""
    global _compute
    with _lock:
        pool, _compute = _compute, None
    if pool is not None:
        pool.shutdown(wait=True)


_malloc_trim: Callable[[int], int] | None
try:
    _malloc_trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None
_trimmed = 0.0
TRIM_EVERY = 1.0  # seconds: malloc_trim walks the whole heap


def trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc only; at most once a second). Bulk writes
    leave their batches' freed buffers resident otherwise: ~15 MiB after loading 20k vectors."""
    global _trimmed
    now = time.monotonic()
    if _malloc_trim is not None and now - _trimmed >= TRIM_EVERY:
        _trimmed = now
        _malloc_trim(0)
