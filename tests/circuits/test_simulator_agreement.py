"""The statevector backend against cirq's simulators, the reference."""
from __future__ import annotations

import cirq
import numpy as np
import pytest
from scipy import stats

from qstore.circuits import CircuitSpec, CirqBackend, StatevectorBackend, get_backend

ENTANGLEMENTS = ("linear", "circular", "full")


def random_case(index: int) -> tuple[CircuitSpec, np.ndarray, np.ndarray, list]:
    """Circuit ``index`` of 50: 2-10 qubits, every entanglement pattern, both encodings."""
    rng = np.random.default_rng(1000 + index)
    n = 2 + index % 9
    encoding = "amplitude" if index % 2 else "angle"
    reupload = encoding == "angle" and index % 4 == 0
    n_features = int(rng.integers(1, (n if encoding == "angle" else 2 ** n) + 1))
    spec = CircuitSpec(n, int(rng.integers(1, 4)), encoding=encoding, entanglement=ENTANGLEMENTS[index % 3],
                       reupload=reupload, n_features=n_features)
    X = rng.uniform(-1.5, 1.5, size=(2, n_features))
    theta = rng.uniform(-np.pi, np.pi, size=(2, spec.n_params) if index % 5 == 0 else spec.n_params)
    k = min(n, 3)
    observables = [int(q) for q in rng.choice(n, size=k, replace=False)] + [tuple(range(min(n, 2)))]
    return spec, X, theta, observables


@pytest.mark.parametrize("index", range(50))
def test_random_circuit_matches_cirq_simulator(index: int) -> None:
    spec, X, theta, observables = random_case(index)
    sv = StatevectorBackend()
    circuit, _, _ = spec.to_cirq()
    angles = spec.encode(X)
    states = sv.states(spec, X, theta)
    simulator = cirq.Simulator(dtype=np.complex128)
    for b in range(X.shape[0]):
        resolver = spec.resolver(angles[b], theta if theta.ndim == 1 else theta[b])
        reference = simulator.simulate(circuit, resolver, qubit_order=spec.qubits).final_state_vector
        np.testing.assert_allclose(states[b], reference, atol=1e-6)
    np.testing.assert_allclose(sv.expectations(spec, X, theta, observables),
                               CirqBackend().expectations(spec, X, theta, observables), atol=1e-6)


@pytest.mark.parametrize("n_qubits,n_features", [(1, 2), (2, 3), (3, 8), (5, 17), (7, 100)])
def test_amplitude_encoding_prepares_normalised_input(rng, n_qubits: int, n_features: int) -> None:
    spec = CircuitSpec(n_qubits, 1, encoding="amplitude", n_features=n_features)
    X = rng.normal(size=(3, n_features))
    X[0, :: 2] = 0.0   # zero subtrees exercise the tree's degenerate angles
    prep = cirq.Circuit(spec.encoder.ops(spec.qubits, spec.input_symbols))
    assert all(len(op.qubits) == 1 and isinstance(op.gate, cirq.Ry) or op.gate == cirq.CNOT
               for op in prep.all_operations())
    expected = np.zeros((3, 2 ** n_qubits))
    expected[:, :n_features] = X / np.linalg.norm(X, axis=1, keepdims=True)
    angles = spec.encode(X)
    for b in range(3):
        state = cirq.final_state_vector(prep, param_resolver=spec.resolver(angles[b], np.zeros(spec.n_params)),
                                        qubit_order=spec.qubits, dtype=np.complex128)
        np.testing.assert_allclose(state, expected[b], atol=1e-6)
    np.testing.assert_allclose(spec.encoder.state(angles), expected, atol=1e-12)


def test_angle_encoding_is_ry_of_pi_x() -> None:
    spec = CircuitSpec(2, 1)
    X = np.array([[0.5, 1.0]])
    circuit = cirq.Circuit(spec.encoder.ops(spec.qubits, spec.input_symbols))
    state = cirq.final_state_vector(circuit, param_resolver=spec.resolver(spec.encode(X)[0], np.zeros(6)),
                                    qubit_order=spec.qubits)
    # RY(pi/2)|0> = (|0> + |1>)/sqrt2 and RY(pi)|0> = |1>
    np.testing.assert_allclose(np.abs(state) ** 2, [0, 0.5, 0, 0.5], atol=1e-7)


def test_circuit_structure_and_parameter_order() -> None:
    spec = CircuitSpec(3, 2, entanglement="circular")
    circuit, theta_symbols, input_symbols = spec.to_cirq()
    assert spec.n_params == len(theta_symbols) == 18
    assert len(input_symbols) == 3
    assert cirq.parameter_names(circuit) == {s.name for s in theta_symbols + input_symbols}
    cnots = [op for op in circuit.all_operations() if op.gate == cirq.CNOT]
    assert [(op.qubits[0].x, op.qubits[1].x) for op in cnots] == [(0, 1), (1, 2), (2, 0)] * 2
    qubit1 = [cirq.parameter_names(op) for op in circuit.all_operations()
              if op.qubits == (spec.qubits[1],) and cirq.is_parameterized(op)]
    assert qubit1[:4] == [{"x_1"}, {"theta_3"}, {"theta_4"}, {"theta_5"}]
    assert qubit1[4:] == [{"theta_12"}, {"theta_13"}, {"theta_14"}]
    assert CircuitSpec(4, 1, entanglement="full").pairs == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def test_complex64_matches_complex128(rng) -> None:
    spec = CircuitSpec(6, 3, entanglement="full")
    X = rng.uniform(size=(20, 6))
    theta = rng.uniform(-np.pi, np.pi, size=spec.n_params)
    grad_out = rng.normal(size=(20, 6))
    fast, exact = StatevectorBackend(dtype=np.complex64), StatevectorBackend()
    assert fast.states(spec, X, theta).dtype == np.complex64
    np.testing.assert_allclose(fast.expectations(spec, X, theta), exact.expectations(spec, X, theta), atol=1e-5)
    np.testing.assert_allclose(fast.vjp(spec, X, theta, grad_out)[0], exact.vjp(spec, X, theta, grad_out)[0],
                               atol=1e-4)


def test_chunked_threaded_batches_match_single_chunk(rng) -> None:
    spec = CircuitSpec(5, 2, reupload=True)
    X = rng.uniform(size=(37, 5))
    theta = rng.uniform(size=(37, spec.n_params))
    grad_out = rng.normal(size=(37, 5))
    one = StatevectorBackend(chunk_size=1000, threads=1)
    many = StatevectorBackend(chunk_size=4, threads=2)
    np.testing.assert_allclose(many.expectations(spec, X, theta), one.expectations(spec, X, theta), atol=1e-12)
    for a, b in zip(many.vjp(spec, X, theta, grad_out), one.vjp(spec, X, theta, grad_out)):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_sampling_follows_born_rule(rng) -> None:
    spec = CircuitSpec(3, 2)
    X = rng.uniform(size=(1, 3))
    theta = rng.uniform(-np.pi, np.pi, size=spec.n_params)
    sv = StatevectorBackend()
    probs = np.abs(sv.states(spec, X, theta)[0]) ** 2
    counts = sv.sample(spec, X, theta, shots=20000, seed=5)[0]
    assert counts == sv.sample(spec, X, theta, shots=20000, seed=5)[0]
    observed = np.array([counts.get(format(i, "03b"), 0) for i in range(8)])
    assert observed.sum() == 20000
    _, p_value = stats.chisquare(observed, probs * 20000)
    assert p_value > 1e-3


def test_shot_expectations_are_unbiased(rng) -> None:
    spec = CircuitSpec(4, 2)
    X = rng.uniform(size=(4, 4))
    theta = rng.uniform(-np.pi, np.pi, size=spec.n_params)
    exact = StatevectorBackend().expectations(spec, X, theta)
    for backend in (StatevectorBackend(shots=20000, seed=1), CirqBackend(shots=20000, seed=1)):
        estimate = backend.expectations(spec, X, theta)
        sigma = np.sqrt((1 - exact ** 2) / 20000) + 1e-9
        assert np.max(np.abs(estimate - exact) / sigma) < 5


def test_density_matrix_without_noise_matches_and_noise_acts(rng) -> None:
    spec = CircuitSpec(3, 2, entanglement="circular")
    X = rng.uniform(size=(2, 3))
    theta = rng.uniform(-np.pi, np.pi, size=spec.n_params)
    exact = StatevectorBackend().expectations(spec, X, theta)
    clean = get_backend("cirq-density-matrix").expectations(spec, X, theta)
    np.testing.assert_allclose(clean, exact, atol=1e-6)
    depolarised = get_backend("cirq-density-matrix", noise={"depolarizing": 0.05}).expectations(spec, X, theta)
    assert np.all(np.abs(depolarised) < np.abs(exact) + 1e-9)   # depolarising shrinks <Z> towards 0
    assert np.max(np.abs(depolarised - exact)) > 1e-3
    damped = get_backend("cirq-density-matrix", noise={"amplitude_damping": 0.5}).expectations(spec, X, theta)
    assert np.mean(damped) > np.mean(exact)                     # damping pulls towards |0>, <Z> = +1


def test_density_matrix_sampling_with_noise(rng) -> None:
    spec = CircuitSpec(2, 1)
    backend = CirqBackend(density_matrix=True, noise={"amplitude_damping": 1.0}, seed=3)
    counts = backend.sample(spec, rng.uniform(size=(2, 2)), rng.uniform(size=spec.n_params), shots=50)
    assert counts == [{"00": 50}, {"00": 50}]                   # full damping resets to |00>
