"""Arbitrary cirq circuits: simulation, Pauli-sum expectations and their adjoint gradients."""
from __future__ import annotations

import cirq
import numpy as np
import pytest
import scipy.optimize
import sympy

from qstore.circuits import (
    CircuitSpec,
    CompiledCircuit,
    StatevectorBackend,
    expectation_pauli_sum,
    pauli_sum_value_and_grad,
    simulate,
)
from qstore_client.errors import InvalidArgument

a, b, c = sympy.symbols("a b c")
q = cirq.LineQubit.range(3)


def zoo_circuit() -> cirq.Circuit:
    """Parameterised gates of many kinds, including ones that only decompose into EigenGates."""
    return cirq.Circuit(
        cirq.H.on_each(*q),
        cirq.rx(2 * a + 0.3)(q[0]), cirq.ry(b)(q[1]), cirq.rz(a * b)(q[2]),
        cirq.CZ(q[0], q[1]) ** c, cirq.XX(q[1], q[2]) ** (a / 3),
        cirq.PhasedXPowGate(phase_exponent=b, exponent=c)(q[2]),
        cirq.FSimGate(theta=a, phi=c)(q[0], q[2]),
        cirq.ISWAP(q[0], q[1]) ** 0.5, cirq.CCX(*q),
        cirq.MatrixGate(cirq.testing.random_unitary(4, random_state=1))(q[1], q[2]),
        cirq.ZZ(q[0], q[2]) ** b, cirq.Y(q[1]) ** c,
    )


HAMILTONIAN = (0.7 * cirq.Z(q[0]) * cirq.Z(q[1]) - 0.4 * cirq.X(q[1]) * cirq.Y(q[2]) + 0.25 * cirq.Y(q[0])
               + 0.1 * cirq.X(q[0]) * cirq.X(q[1]) * cirq.X(q[2]) - 1.5 * cirq.PauliString())


def test_simulation_matches_cirq(rng) -> None:
    circuit = zoo_circuit()
    compiled = CompiledCircuit(circuit, [a, b, c], q)
    values = rng.uniform(-2, 2, size=(4, 3))
    states = compiled.states(values)
    for row, state in zip(values, states):
        reference = cirq.final_state_vector(circuit, param_resolver=dict(zip("abc", row)), qubit_order=q,
                                            dtype=np.complex128)
        np.testing.assert_allclose(state, reference, atol=1e-10)
    resolved = cirq.resolve_parameters(circuit, dict(zip("abc", values[0])))
    np.testing.assert_allclose(simulate(resolved, qubits=q), states[0], atol=1e-10)


def test_pauli_sum_expectation_matches_cirq(rng) -> None:
    psi = rng.normal(size=8) + 1j * rng.normal(size=8)
    psi /= np.linalg.norm(psi)
    reference = HAMILTONIAN.expectation_from_state_vector(psi.astype(np.complex64), {qq: i for i, qq in enumerate(q)})
    assert expectation_pauli_sum(psi, HAMILTONIAN) == pytest.approx(reference.real, abs=1e-6)
    as_strings = [(0.7, "ZZI"), (-0.4, "IXY"), (0.25, "YII"), (0.1, "XXX"), (-1.5, "III")]
    assert expectation_pauli_sum(psi, as_strings) == pytest.approx(expectation_pauli_sum(psi, HAMILTONIAN))
    batch = np.stack([psi, np.roll(psi, 1)])
    assert expectation_pauli_sum(batch, [(1.0, {0: "Z"})]).shape == (2,)


def test_adjoint_gradient_matches_finite_differences(rng) -> None:
    circuit = zoo_circuit()
    values = rng.uniform(-2, 2, size=(3, 3))
    energy, grad = pauli_sum_value_and_grad(circuit, [a, b, c], values, HAMILTONIAN, q)
    compiled = CompiledCircuit(circuit, ["a", "b", "c"], q)
    np.testing.assert_allclose(energy, compiled.expectation(values, HAMILTONIAN), atol=1e-12)
    h = 1e-6
    for k in range(3):
        step = np.zeros(3)
        step[k] = h
        fd = (compiled.expectation(values + step, HAMILTONIAN) - compiled.expectation(values - step, HAMILTONIAN))
        np.testing.assert_allclose(grad[:, k], fd / (2 * h), atol=1e-6)


def test_model_circuit_through_the_general_path_matches_fast_path(rng) -> None:
    spec = CircuitSpec(3, 2, entanglement="full")
    X = rng.uniform(size=(1, 3))
    theta = rng.uniform(-np.pi, np.pi, size=spec.n_params)
    circuit, theta_symbols, input_symbols = spec.to_cirq()
    compiled = CompiledCircuit(circuit, theta_symbols + input_symbols, spec.qubits)
    values = np.concatenate([theta, spec.encode(X)[0]])
    sv = StatevectorBackend()
    np.testing.assert_allclose(compiled.states(values), sv.states(spec, X, theta)[0], atol=1e-10)
    z01 = [(1.0, {0: "Z", 1: "Z"})]
    energy, grad = compiled.value_and_grad(values, z01)
    jac_theta, _ = sv.jacobian(spec, X, theta, observables=[(0, 1)])
    assert energy == pytest.approx(sv.expectations(spec, X, theta, [(0, 1)])[0, 0], abs=1e-10)
    np.testing.assert_allclose(grad[: spec.n_params], jac_theta[0, 0], atol=1e-10)


def test_vqe_minimize_reaches_ground_state() -> None:
    """Two-qubit H2-like Hamiltonian: minimising with adjoint gradients finds the exact ground energy."""
    terms = [(-1.05, "II"), (0.39, "ZI"), (-0.39, "IZ"), (-0.01, "ZZ"), (0.18, "XX")]
    qs = cirq.LineQubit.range(2)
    t = sympy.symbols("t0:6")
    ansatz = cirq.Circuit(cirq.ry(t[0])(qs[0]), cirq.ry(t[1])(qs[1]), cirq.CNOT(*qs),
                          cirq.ry(t[2])(qs[0]), cirq.ry(t[3])(qs[1]), cirq.CNOT(*qs),
                          cirq.ry(t[4])(qs[0]), cirq.ry(t[5])(qs[1]))
    compiled = CompiledCircuit(ansatz, t, qs)
    result = scipy.optimize.minimize(lambda v: compiled.value_and_grad(v, terms), x0=np.full(6, 0.1), jac=True,
                                     method="BFGS")
    matrix = sum(coef * cirq.DensePauliString(s).on(*qs).matrix(qs) for coef, s in terms)
    assert result.fun == pytest.approx(np.linalg.eigvalsh(matrix)[0], abs=1e-6)


def test_rejects_what_it_cannot_differentiate() -> None:
    theta = sympy.Symbol("theta")
    with pytest.raises(InvalidArgument) as err:
        CompiledCircuit(cirq.Circuit(cirq.measure(q[0])), [], q)
    assert err.value.code == "invalid_parameters"
    with pytest.raises(InvalidArgument):
        CompiledCircuit(cirq.Circuit(cirq.rx(theta)(q[0])), [a], q)          # unbound symbol
    with pytest.raises(InvalidArgument):
        CompiledCircuit(cirq.Circuit(cirq.depolarize(0.1)(q[0])), [], q)    # not unitary
    with pytest.raises(InvalidArgument) as err:
        expectation_pauli_sum(np.array([1, 0], dtype=complex), [(1j, "Z")])  # not Hermitian
    assert err.value.code == "invalid_parameters"
