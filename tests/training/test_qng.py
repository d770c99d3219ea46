"""Quantum natural gradient: the textbook single-qubit problem, and the metric against finite differences."""
from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

from qstore.training import QNG, VQC, Trainer
from qstore.training.data import ArraySource
from qstore.training.qng import natural_direction
from qstore.vqe import hamiltonian_objective, minimize

A, B = sympy.symbols("a b")
QUBIT = cirq.LineQubit(0)
RX_RY = cirq.Circuit(cirq.rx(A)(QUBIT), cirq.ry(B)(QUBIT))
X_PLUS_Z = [(1.0, "X"), (1.0, "Z")]
# <X + Z> = cos a (sin b + cos b), minimum -sqrt(2) at a = 0, b = -3pi/4. The metric is
# diag(1/4, cos^2(a)/4), so QNG moves ~4x (more along b) faster than GD at the same step size.
START = [0.85, -np.pi / 2]


def _first_within(energies, tol=1e-6) -> int | None:
    hits = np.flatnonzero(np.abs(np.asarray(energies) + np.sqrt(2)) < tol)
    return int(hits[0]) if hits.size else None


def test_qng_converges_where_gradient_descent_has_not() -> None:
    qng = minimize(RX_RY, X_PLUS_Z, START, optimizer="qng", lr=0.01, steps=120, metric="full", lam=0.0)
    steps = _first_within(qng.energies + [qng.energy])
    assert steps is not None and steps <= 120, qng.energy + np.sqrt(2)
    assert abs(qng.energy + np.sqrt(2)) < 1e-6
    gd = minimize(RX_RY, X_PLUS_Z, START, optimizer="sgd", lr=0.01, steps=500)
    assert _first_within(gd.energies + [gd.energy]) is None
    assert gd.energy + np.sqrt(2) > 1e-6


def test_qng_block_and_diag_metrics_also_converge() -> None:
    for kind in ("block", "diag"):
        r = minimize(RX_RY, X_PLUS_Z, START, optimizer="qng", lr=0.01, steps=150, metric=kind, lam=1e-3)
        assert abs(r.energy + np.sqrt(2)) < 1e-6, kind


def _fd_metric(states, theta: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Fubini–Study metric from central differences of the state (reference)."""
    psi = states(theta)
    cols = []
    for k in range(len(theta)):
        e = np.zeros_like(theta)
        e[k] = h
        cols.append((states(theta + e) - states(theta - e)) / (2 * h))
    d = np.array(cols)
    overlap = d.conj() @ psi
    return (d.conj() @ d.T - np.outer(overlap, overlap.conj())).real


def test_minimize_metric_matches_finite_differences_of_cirq_states(rng) -> None:
    a, b, c = sympy.symbols("a b c")
    q0, q1 = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.ry(a)(q0), cirq.rx(2 * b)(q1), cirq.CNOT(q0, q1), cirq.rz(c)(q0),
                           cirq.ry(a + b)(q1), cirq.ZZPowGate(exponent=c / np.pi)(q0, q1), cirq.rx(b)(q0))
    objective = hamiltonian_objective(circuit, [(1.0, "ZX")])
    assert [str(s) for s in objective.compiled.symbols] == ["a", "b", "c"]
    theta = rng.uniform(-np.pi, np.pi, 3)

    def states(t: np.ndarray) -> np.ndarray:
        return cirq.final_state_vector(circuit, param_resolver={"a": t[0], "b": t[1], "c": t[2]},
                                       dtype=np.complex128)

    reference = _fd_metric(states, theta)
    np.testing.assert_allclose(objective.metric(theta, "full"), reference, atol=1e-6)
    np.testing.assert_allclose(np.diag(objective.metric(theta, "diag")), np.diag(reference), atol=1e-6)


async def test_batch_metric_is_the_mean_of_per_sample_metrics_from_cirq(rng) -> None:
    """The data-dependent circuit's metric: per-sample finite differences on cirq.Simulator, averaged."""
    model = VQC(2, 2, 2, entanglement="full", reupload=True)
    X = rng.uniform(0, 1, size=(3, 2))
    summary = await ArraySource(X, [0, 1, 0]).summary()
    model.scaler.fit(summary.stats)
    Xs = model.features(X)
    params = model.init_params(rng)
    spec = model.spec
    circuit, _, _ = spec.to_cirq()
    angles = spec.encode(Xs)
    per_sample = []
    for row in angles:
        def states(t: np.ndarray, row=row) -> np.ndarray:
            return cirq.final_state_vector(circuit, param_resolver=spec.resolver(row, t), qubit_order=spec.qubits,
                                           dtype=np.complex128)
        per_sample.append(_fd_metric(states, params[:spec.n_params]))
    expected = np.mean(per_sample, axis=0)
    got = model.metric_tensor(Xs, params, "full")[:spec.n_params, :spec.n_params]
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_natural_direction_solves_the_regularised_system(rng) -> None:
    m = rng.normal(size=(5, 3))
    metric = m @ m.T / 4                      # rank 3 of 5: singular
    grad = rng.normal(size=5)
    for lam in (1e-2, 1.0):
        delta = natural_direction(metric, grad, lam)
        np.testing.assert_allclose((metric + lam * np.eye(5)) @ delta, grad, atol=1e-10)
    delta = natural_direction(metric, grad, 0.0)          # singular: least-squares fallback, finite
    assert np.all(np.isfinite(delta))
    np.testing.assert_allclose(delta, np.linalg.pinv(metric) @ grad, atol=1e-8)


async def test_qng_trains_a_classifier(reference) -> None:
    data = reference("iris-binary")
    trainer = Trainer(None, VQC(4, 2, 2), optimizer="qng", lr=0.05, batch_size=16, seed=0,
                      optimizer_options={"metric": "block", "lam": 0.01})
    await trainer.fit((data.X_train, data.y_train), epochs=10)
    assert isinstance(trainer.optimizer, QNG)
    assert await trainer.evaluate(data.X_test, data.y_test) >= 0.97


def test_qng_refuses_bad_settings() -> None:
    from qstore_client.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        QNG(metric="banana")
    with pytest.raises(InvalidArgument):
        QNG(lam=-1.0)
