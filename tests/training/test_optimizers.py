"""Optimizers: update rules, serialisable state (exact through the database), and VQE with ``minimize``."""
from __future__ import annotations

import cirq
import numpy as np
import pytest

from qstore.circuits import CircuitSpec
from qstore.training import SGD, Adam, TunnelingOptimizer, get_optimizer
from qstore.training.qng import QNG
from qstore.vqe import minimize
from qstore_client.errors import Conflict, InvalidArgument


class Quadratic:
    """0.5 x^T A x - b^T x: a known objective with metric A."""

    def __init__(self, A: np.ndarray, b: np.ndarray):
        self.A, self.b, self.evaluations = A, b, 0

    def value(self, x: np.ndarray) -> float:
        self.evaluations += 1
        return float(0.5 * x @ self.A @ x - self.b @ x)

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        return float(0.5 * x @ self.A @ x - self.b @ x), self.A @ x - self.b

    def metric(self, x: np.ndarray, kind: str) -> np.ndarray:
        return self.A


QUAD = Quadratic(np.array([[3.0, 0.5], [0.5, 1.0]]), np.array([1.0, -2.0]))


def test_sgd_momentum_rule() -> None:
    opt = SGD(lr=0.1, momentum=0.5)
    x = np.array([1.0, 1.0])
    g1 = QUAD.A @ x - QUAD.b
    x1 = opt.step(QUAD, x).params
    np.testing.assert_allclose(x1, x - 0.1 * g1)
    g2 = QUAD.A @ x1 - QUAD.b
    x2 = opt.step(QUAD, x1).params
    np.testing.assert_allclose(x2, x1 - 0.1 * (0.5 * g1 + g2))


def test_adam_rule_against_the_paper() -> None:
    opt = Adam(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
    x = np.array([0.3, -0.7])
    m = v = np.zeros(2)
    for t in range(1, 6):
        g = QUAD.A @ x - QUAD.b
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        expected = x - 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        x = opt.step(QUAD, x).params
        np.testing.assert_allclose(x, expected, rtol=1e-13)


def test_qng_with_the_exact_metric_is_newton_on_a_quadratic() -> None:
    x = np.array([5.0, -3.0])
    step = QNG(lr=1.0, metric="full", lam=0.0).step(QUAD, x)
    np.testing.assert_allclose(step.params, np.linalg.solve(QUAD.A, QUAD.b), atol=1e-12)


@pytest.mark.parametrize("opt", [SGD(0.1, momentum=0.9), Adam(0.05), QNG(0.05), TunnelingOptimizer(0.05, seed=4)],
                         ids=["sgd", "adam", "qng", "tunneling"])
async def test_state_survives_the_database_exactly(fastdb, opt) -> None:
    x = np.array([0.4, 0.2])
    for _ in range(3):
        x = opt.step(QUAD, x).params
    cid = await fastdb.save_checkpoint({"optimizer": opt.state_dict()})
    clone = get_optimizer(opt.name, **opt.hyperparameters())
    clone.load_state_dict((await fastdb.load_checkpoint(cid))["optimizer"])
    a, b = x.copy(), x.copy()
    for _ in range(4):
        a, b = opt.step(QUAD, a).params, clone.step(QUAD, b).params
    np.testing.assert_array_equal(a, b)


def test_unknown_optimizer_and_bad_options() -> None:
    with pytest.raises(InvalidArgument) as info:
        get_optimizer("lbfgs", 0.1)
    assert info.value.code == "unknown_optimizer"
    with pytest.raises(InvalidArgument):
        get_optimizer("adam", 0.1, nesterov=True)
    with pytest.raises(InvalidArgument):
        SGD(lr=0.1, momentum=1.5)
    with pytest.raises(InvalidArgument):
        TunnelingOptimizer(cooling=0.0)
    with pytest.raises(Conflict) as info:
        Adam().load_state_dict(SGD().state_dict())
    assert info.value.code == "checkpoint_mismatch"


@pytest.mark.parametrize("optimizer, lr", [("adam", 0.1), ("qng", 0.1), ("sgd", 0.2)])
def test_vqe_on_the_hardware_efficient_ansatz_reaches_the_ground_energy(optimizer, lr) -> None:
    q = cirq.LineQubit.range(2)
    h = cirq.Z(q[0]) * cirq.Z(q[1]) + 0.5 * cirq.X(q[0]) + 0.5 * cirq.X(q[1])   # transverse-field Ising
    ground = np.linalg.eigvalsh(h.matrix(q)).min()
    spec = CircuitSpec(2, 2)
    start = np.random.default_rng(0).uniform(-np.pi, np.pi, spec.n_params)
    result = minimize(spec, h, start, optimizer=optimizer, lr=lr, steps=200)
    assert result.energy == pytest.approx(ground, abs=1e-6)
    assert result.best_energy <= result.energy + 1e-12 and result.evaluations == 201
    # the energies it reports are the circuit's: check the final one with cirq.Simulator
    circuit, theta, inputs = spec.to_cirq()
    resolver = {**{s: 0.0 for s in inputs}, **dict(zip(theta, result.params))}
    psi = cirq.final_state_vector(circuit, param_resolver=resolver, qubit_order=q, dtype=np.complex128)
    assert np.vdot(psi, h.matrix(q) @ psi).real == pytest.approx(result.energy, abs=1e-9)


def test_minimize_stops_at_a_target_and_validates_params() -> None:
    q = cirq.LineQubit(0)
    import sympy

    a = sympy.Symbol("a")
    result = minimize(cirq.Circuit(cirq.ry(a)(q)), [(1.0, "Z")], [0.3], optimizer="adam", lr=0.1, steps=1000,
                      target=-1.0, target_tol=1e-6)
    assert result.converged and result.steps < 1000
    with pytest.raises(InvalidArgument):
        minimize(cirq.Circuit(cirq.ry(a)(q)), [(1.0, "Z")], [0.3, 0.4])
    with pytest.raises(InvalidArgument):
        minimize(cirq.Circuit(cirq.ry(a)(q)), [(1.0, "Z")], [float("nan")])
