"""The IonQ backend: the real cirq-ionq client against a local fake of IonQ's HTTP API."""
from __future__ import annotations

import os

import cirq
import cirq_ionq
import numpy as np
import pytest

from qstore.circuits import CircuitSpec, StatevectorBackend, jacobian
from qstore.circuits.ionq_backend import IonQBackend
from qstore.circuits.ionq_pricing import IonQPricing
from qstore_client.errors import BackendError

SPEC = CircuitSpec(2, 1, entanglement="linear")


def _backend(fake, **options) -> IonQBackend:
    settings = dict(api_key=fake.api_key, remote_host=fake.url, target="simulator", shots=4000,
                    poll_interval=0.01, job_timeout=10.0, seed=1)
    settings.update(options)
    return IonQBackend(**settings)


def _batch(rng, batch: int = 3):
    return rng.uniform(size=(batch, SPEC.n_features)), rng.uniform(-np.pi, np.pi, size=SPEC.n_params)


def test_jobs_are_submitted_polled_and_turned_into_expectations(fake_ionq, rng) -> None:
    X, theta = _batch(rng)
    estimate = _backend(fake_ionq).expectations(SPEC, X, theta)
    exact = StatevectorBackend().expectations(SPEC, X, theta)
    sigma = np.sqrt((1 - exact ** 2) / 4000) + 1e-9
    assert np.max(np.abs(estimate - exact) / sigma) < 5
    assert fake_ionq.created == 3
    polls = [p for m, p, s in fake_ionq.requests if m == "GET" and p.count("/") == 3]
    assert len(polls) >= 3 * fake_ionq.polls_to_complete     # each job polled until completed
    assert all(job.status == "completed" for job in fake_ionq.jobs.values())


def test_circuits_are_resolved_and_compiled_to_ionq_gates(fake_ionq, rng) -> None:
    spec = CircuitSpec(3, 1, encoding="amplitude", n_features=5)
    backend = _backend(fake_ionq)
    X, theta = rng.normal(size=(1, 5)), rng.uniform(size=spec.n_params)
    circuits = backend.circuits(spec, spec.encode(X), theta)
    assert not cirq.is_parameterized(circuits[0])
    gateset = cirq_ionq.IonQTargetGateset()
    assert all(op in gateset for op in circuits[0].all_operations())
    counts = backend.sample(spec, X, theta, shots=3000, seed=4)[0]
    probs = np.abs(StatevectorBackend().states(spec, X, theta)[0]) ** 2
    for bits, p in enumerate(probs):
        assert counts.get(format(bits, "03b"), 0) / 3000 == pytest.approx(p, abs=0.05)


def test_qpu_target_counts_and_cost(fake_ionq, rng) -> None:
    pricing = IonQPricing(one_qubit_gate_shot=0.001, two_qubit_gate_shot=0.01, minimum_per_job=0.0)
    backend = _backend(fake_ionq, target="qpu", shots=500, budget_usd=100.0, pricing=pricing)
    X, theta = _batch(rng, 2)
    circuits = backend.circuits(SPEC, SPEC.encode(X), theta)
    n1 = sum(1 for op in circuits[0].all_operations() if len(op.qubits) == 1)
    n2 = sum(1 for op in circuits[0].all_operations() if len(op.qubits) == 2 and not cirq.is_measurement(op))
    assert backend.estimate_cost(SPEC, X, theta) == pytest.approx(2 * 500 * (n1 * 0.001 + n2 * 0.01))
    counts = backend.sample(SPEC, X, theta, shots=500)
    assert [sum(c.values()) for c in counts] == pytest.approx([500, 500], abs=2)   # rounded frequencies
    assert backend.spent_usd == pytest.approx(2 * 500 * (n1 * 0.001 + n2 * 0.01))
    assert {job.target for job in fake_ionq.jobs.values()} == {"qpu"}


def test_budget_refusal_sends_nothing(fake_ionq, rng) -> None:
    backend = _backend(fake_ionq, target="qpu", shots=1000, budget_usd=5.0)   # Aria prices: >= $12.42 a job
    X, theta = _batch(rng)
    with pytest.raises(BackendError) as err:
        backend.expectations(SPEC, X, theta)
    assert err.value.code == "budget_exceeded"
    assert "budget" in err.value.message
    assert fake_ionq.requests == [] and backend.spent_usd == 0.0


def test_failed_job_raises_a_clear_error(fake_ionq, rng) -> None:
    fake_ionq.fail_next = 1
    X, theta = _batch(rng, 1)
    with pytest.raises(BackendError) as err:
        _backend(fake_ionq).expectations(SPEC, X, theta)
    assert err.value.code == "job_failed"
    assert "injected failure: trap lost ions" in err.value.message


def test_rate_limited_requests_are_retried(fake_ionq, rng) -> None:
    fake_ionq.rate_limit = 3
    X, theta = _batch(rng, 1)
    values = _backend(fake_ionq).expectations(SPEC, X, theta)
    assert values.shape == (1, 2)
    statuses = [s for _, _, s in fake_ionq.requests]
    assert statuses[:3] == [429, 429, 429] and statuses[3] == 200


def test_persistent_rate_limit_becomes_backend_error(fake_ionq, rng) -> None:
    fake_ionq.rate_limit = 10 ** 6
    X, theta = _batch(rng, 1)
    with pytest.raises(BackendError) as err:
        _backend(fake_ionq, max_retry_seconds=0.3).expectations(SPEC, X, theta)
    assert err.value.code == "backend_error"


def test_job_timeout_cancels_the_job(fake_ionq, rng) -> None:
    fake_ionq.hang = True
    X, theta = _batch(rng, 1)
    with pytest.raises(BackendError) as err:
        _backend(fake_ionq, job_timeout=0.2).expectations(SPEC, X, theta)
    assert err.value.code == "job_timeout"
    assert [job.status for job in fake_ionq.jobs.values()] == ["canceled"]


def test_bad_api_key_is_a_backend_error(fake_ionq, rng) -> None:
    X, theta = _batch(rng, 1)
    with pytest.raises(BackendError) as err:
        _backend(fake_ionq, api_key="wrong").expectations(SPEC, X, theta)
    assert err.value.code == "backend_error" and "Not authorized" in err.value.message


def test_concurrency_is_bounded(fake_ionq, rng) -> None:
    fake_ionq.polls_to_complete = 4          # jobs stay open long enough to overlap
    X, theta = _batch(rng, 6)
    _backend(fake_ionq, max_concurrent_jobs=2, poll_interval=0.03).expectations(SPEC, X, theta)
    assert fake_ionq.created == 6
    assert fake_ionq.max_open == 2


def test_parameter_shift_runs_unchanged_on_ionq(fake_ionq, rng) -> None:
    X, theta = _batch(rng, 1)
    shots = 20000
    backend = _backend(fake_ionq, shots=shots, max_concurrent_jobs=8)
    ps_theta, ps_x = jacobian(backend, SPEC, X, theta, method="parameter-shift")
    exact_theta, exact_x = jacobian(StatevectorBackend(), SPEC, X, theta, method="adjoint")
    sigma = np.sqrt(2.0 / shots) / 2.0
    assert np.max(np.abs(ps_theta - exact_theta)) < 5 * sigma
    assert np.max(np.abs(ps_x - exact_x)) < 5 * sigma * np.pi
    assert fake_ionq.created == 2 * (SPEC.n_params + SPEC.n_inputs)


@pytest.mark.live
@pytest.mark.skipif(not os.environ.get("IONQ_API_KEY"), reason="needs IONQ_API_KEY")
def test_live_ionq_simulator(rng) -> None:
    backend = IonQBackend(target="simulator", shots=1000, poll_interval=1.0, job_timeout=600.0)
    X, theta = _batch(rng, 1)
    estimate = backend.expectations(SPEC, X, theta)
    exact = StatevectorBackend().expectations(SPEC, X, theta)
    assert np.max(np.abs(estimate - exact)) < 0.2
