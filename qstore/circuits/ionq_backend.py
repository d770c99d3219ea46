"""IonQ hardware and cloud simulator through cirq-ionq.

Each row of a batch becomes one job: the circuit is resolved, compiled to the
IonQ gate set, measured on all qubits, priced, and (if the whole batch fits the
budget) submitted. Jobs run concurrently on at most ``max_concurrent_jobs``
threads; each is polled until it finishes or ``job_timeout`` passes. HTTP 429
and 5xx answers are retried by the cirq-ionq client with exponential backoff
(0.1 s doubling) for up to ``max_retry_seconds``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import cirq
import cirq_ionq
import numpy as np
from cirq_ionq import ionq_exceptions

from qstore.errors import error

from .backend import Backend, check_execute_args, check_shots
from .ionq_pricing import IonQPricing, default_pricing
from .observables import ZObservables
from .spec import CircuitSpec

log = logging.getLogger(__name__)

MEASUREMENT_KEY = "m"
_GATESET = cirq_ionq.IonQTargetGateset()


def compile_for_ionq(circuit: cirq.AbstractCircuit, resolver: cirq.ParamResolver,
                     qubits: list[cirq.Qid]) -> cirq.Circuit:
    """Resolve parameters (IonQ takes numbers only), compile to IonQ gates, measure all qubits."""
    resolved = cirq.resolve_parameters(circuit, resolver)
    compiled = cirq.optimize_for_target_gateset(resolved, gateset=_GATESET)
    return compiled + cirq.Moment(cirq.measure(*qubits, key=MEASUREMENT_KEY))


class IonQBackend(Backend):
    """Runs circuits on IonQ; expectations are estimated from ``shots`` counts.

    Args:
        api_key: IonQ API key (default: ``IONQ_API_KEY``).
        remote_host: API root, e.g. ``https://api.ionq.co`` (default: cirq-ionq's).
        target: ``simulator`` or a QPU such as ``qpu`` / ``qpu.aria-1``.
        shots: repetitions per circuit.
        budget_usd: total estimated spend this backend may commit; a batch that
            would exceed it is refused before any job is sent (``budget_exceeded``).
        pricing: prices for the estimate (default: free simulator, Aria QPU;
            see ``ionq_pricing.IonQPricing``).
        max_concurrent_jobs: bound on jobs in flight.
        poll_interval: seconds between status polls.
        job_timeout: seconds to wait for one job before cancelling it (``job_timeout``).
        max_retry_seconds: how long the client keeps retrying 429/5xx answers.
        seed: seeds sampling of counts when the simulator returns probabilities.
    """

    name = "ionq"

    def __init__(self, api_key: str | None = None, remote_host: str | None = None, target: str = "simulator",
                 shots: int = 1000, budget_usd: float = 0.0, pricing: IonQPricing | None = None,
                 max_concurrent_jobs: int = 4, poll_interval: float = 1.0, job_timeout: float = 600.0,
                 max_retry_seconds: float = 120.0, seed: int | None = None):
        api_key = api_key or os.environ.get("IONQ_API_KEY")
        if not api_key:
            raise error("invalid_parameters", "IonQ needs an API key: pass api_key= or set IONQ_API_KEY")
        if max_concurrent_jobs < 1 or poll_interval <= 0 or job_timeout <= 0 or budget_usd < 0:
            raise error("invalid_parameters", "max_concurrent_jobs >= 1, poll_interval > 0, job_timeout > 0 and "
                                              "budget_usd >= 0 are required")
        self.target = target
        self.shots = check_shots(shots)
        self.budget_usd = float(budget_usd)
        self.pricing = pricing or default_pricing(target)
        self.max_concurrent_jobs = int(max_concurrent_jobs)
        self.poll_interval = float(poll_interval)
        self.job_timeout = float(job_timeout)
        self.spent_usd = 0.0
        self._lock = threading.Lock()
        self._rng = np.random.default_rng(seed)
        self.service = cirq_ionq.Service(
            api_key=api_key, remote_host=remote_host,
            default_target=target if target in ("simulator", "qpu") else None,
            max_retry_seconds=max_retry_seconds)

    # -- circuits and cost ----------------------------------------------------------------
    def circuits(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray) -> list[cirq.Circuit]:
        """The compiled, measured circuit of every row, as it would be sent."""
        angles, theta = check_execute_args(spec, angles, theta)
        circuit, _, _ = spec.to_cirq()
        return [compile_for_ionq(circuit, spec.resolver(angles[b], theta if theta.ndim == 1 else theta[b]),
                                 spec.qubits) for b in range(angles.shape[0])]

    def estimate_cost(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, shots: int | None = None) -> float:
        """Estimated USD for running ``expectations`` (or ``sample`` with ``shots``) on this batch."""
        X, theta, _ = self.prepare(spec, X, theta, None)
        return self.pricing.estimate(self.circuits(spec, spec.encoder.angles(X), theta), shots or self.shots)

    def _reserve(self, cost: float) -> None:
        with self._lock:
            if self.spent_usd + cost > self.budget_usd + 1e-9:
                raise error("budget_exceeded",
                            f"IonQ batch would cost about ${cost:.2f} on {self.target!r}; with ${self.spent_usd:.2f} "
                            f"already committed that exceeds the ${self.budget_usd:.2f} budget (budget_usd)")
            self.spent_usd += cost

    # -- jobs ---------------------------------------------------------------------------
    def _run_all(self, circuits: list[cirq.Circuit], shots: int, n_qubits: int,
                 rng: np.random.Generator) -> list[dict[str, int]]:
        cost = self.pricing.estimate(circuits, shots)
        self._reserve(cost)
        log.info("submitting %d IonQ jobs to %s (%d shots, est. $%.2f)", len(circuits), self.target, shots, cost)
        with ThreadPoolExecutor(min(self.max_concurrent_jobs, len(circuits)),
                                thread_name_prefix="qstore-ionq") as pool:
            futures = [pool.submit(self._run_job, c, shots, n_qubits, rng, i) for i, c in enumerate(circuits)]
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in done if f.exception() is not None]
            if failed:
                for f in pending:
                    f.cancel()
                raise failed[0].exception()
        return [f.result() for f in futures]

    def _run_job(self, circuit: cirq.Circuit, shots: int, n_qubits: int, rng: np.random.Generator,
                 index: int) -> dict[str, int]:
        try:
            job = self.service.create_job(circuit=circuit, repetitions=shots, target=self.target,
                                          name=f"qstore-{index}")
            deadline = time.monotonic() + self.job_timeout
            while (status := job.status()) not in cirq_ionq.Job.TERMINAL_STATES:
                if time.monotonic() > deadline:
                    self._cancel(job)
                    raise error("job_timeout",
                                f"IonQ job {job.job_id()} still {status!r} after {self.job_timeout:.0f} s; "
                                "cancelled (job_timeout)")
                time.sleep(self.poll_interval)
            if status != "completed":
                raise error("job_failed", f"IonQ job {job.job_id()} {status}: {self._failure(job)}")
            result = job.results(timeout_seconds=max(1, int(self.job_timeout)), polling_seconds=1)
        except ionq_exceptions.IonQException as exc:
            raise error("backend_error", f"IonQ API error: {exc}") from None
        except TimeoutError as exc:
            raise error("backend_error",
                        f"IonQ API kept failing (429/5xx or unreachable) after retries: {exc}") from None
        result = result[0] if isinstance(result, list) else result
        if isinstance(result, cirq_ionq.SimulatorResult):
            # The cloud simulator returns exact probabilities; draw the shots here.
            keys = np.array(list(result.probabilities().keys()), dtype=np.int64)
            probs = np.array(list(result.probabilities().values()))
            with self._lock:
                hist = rng.multinomial(shots, probs / probs.sum())
            pairs = zip(keys, hist)
        else:
            pairs = result.counts().items()
        return {format(int(k), f"0{n_qubits}b"): int(c) for k, c in pairs if c > 0}

    @staticmethod
    def _failure(job: cirq_ionq.Job) -> str:
        """The failure message cirq-ionq reports for an unsuccessful job."""
        try:
            job.results(timeout_seconds=0)
        except (RuntimeError, TimeoutError, ionq_exceptions.IonQException) as exc:
            return str(exc)
        return "no failure message"

    @staticmethod
    def _cancel(job: cirq_ionq.Job) -> None:
        try:
            job.cancel()
        except (ionq_exceptions.IonQException, TimeoutError) as exc:
            log.warning("could not cancel IonQ job %s: %s", job.job_id(), exc)

    # -- Backend --------------------------------------------------------------------------
    def execute(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray,
                observables: ZObservables) -> np.ndarray:
        counts = self._run_all(self.circuits(spec, angles, theta), self.shots, spec.n_qubits, self._rng)
        return observables.from_counts(counts)

    def counts(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, shots: int,
               seed: int | None = None) -> list[dict[str, int]]:
        rng = np.random.default_rng(seed) if seed is not None else self._rng
        return self._run_all(self.circuits(spec, angles, theta), check_shots(shots), spec.n_qubits, rng)
