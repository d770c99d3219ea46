"""The density-matrix backend against cirq.DensityMatrixSimulator, noise presets, folding and bad input."""
from __future__ import annotations

import cirq
import numpy as np
import pytest

from qstore.circuits import CircuitSpec, get_backend
from qstore.circuits.density_matrix import DensityMatrixBackend
from qstore.circuits.noise import PRESETS, NoiseModel, apply_readout
from qstore.errors import QStoreError


def _random_case(seed: int) -> tuple[cirq.Circuit, NoiseModel, list[cirq.Qid]]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 5))
    qubits = cirq.LineQubit.range(n)
    gates = {cirq.H: 1, cirq.T: 1, cirq.CNOT: 2, cirq.CZ: 2, cirq.ISWAP: 2, cirq.rx(rng.uniform(0, 6)): 1,
             cirq.ry(rng.uniform(0, 6)): 1, cirq.rz(rng.uniform(0, 6)): 1, cirq.XX ** rng.uniform(0, 1): 2,
             cirq.CCX: 3}
    circuit = cirq.testing.random_circuit(qubits, n_moments=6, op_density=0.8, gate_domain=gates,
                                          random_state=seed)
    noise = NoiseModel(depolarizing_1q=rng.uniform(0, 0.05), depolarizing_2q=rng.uniform(0, 0.1),
                       damping_1q=rng.uniform(0, 0.05), damping_2q=rng.uniform(0, 0.05),
                       channel=cirq.phase_damp(0.03) if seed % 3 == 0 else None)
    return circuit, noise, qubits


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_cirq_density_matrix_simulator(seed: int) -> None:
    circuit, noise, qubits = _random_case(seed)
    ours = DensityMatrixBackend(noise=noise).density_matrix(circuit, qubits=qubits)
    ref = cirq.DensityMatrixSimulator(noise=noise.to_cirq(), dtype=np.complex128).simulate(
        circuit, qubit_order=qubits).final_density_matrix
    assert noise.depolarizing_2q > 0 and not np.allclose(ours, cirq.final_density_matrix(circuit, qubit_order=qubits),
                                                         atol=1e-3)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_spec_circuits_with_readout_error_agree_with_cirq() -> None:
    noise = PRESETS["ionq_aria"]
    spec = CircuitSpec(n_qubits=3, layers=2, encoding="angle")
    rng = np.random.default_rng(1)
    X, theta = rng.random((4, 3)), rng.uniform(-np.pi, np.pi, spec.n_params)
    dm = get_backend("density_matrix", noise="ionq_aria")
    probs = dm.probabilities(spec, spec.encode(X), theta)
    circuit, _, _ = spec.to_cirq()
    sim = cirq.DensityMatrixSimulator(noise=noise.to_cirq(), dtype=np.complex128)
    for b in range(4):
        rho = sim.simulate(circuit, spec.resolver(spec.encode(X)[b], theta), qubit_order=spec.qubits)
        ref = apply_readout(np.real(np.diag(rho.final_density_matrix))[None], noise.readout)
        np.testing.assert_allclose(probs[b], ref[0], atol=1e-6)
    np.testing.assert_allclose(dm.expectations(spec, X, theta), probs @ spec.observables.signs.T, atol=1e-12)


def test_noiseless_density_matrix_is_the_pure_state() -> None:
    spec = CircuitSpec(n_qubits=3, layers=2, encoding="amplitude", n_features=8)
    rng = np.random.default_rng(2)
    X, theta = rng.random((3, 8)), rng.uniform(-np.pi, np.pi, spec.n_params)
    np.testing.assert_allclose(get_backend("density_matrix").expectations(spec, X, theta),
                               get_backend("statevector").expectations(spec, X, theta), atol=1e-10)


def test_a_cirq_channel_is_a_noise_model() -> None:
    q = cirq.LineQubit.range(2)
    circuit = cirq.Circuit(cirq.H(q[0]), cirq.CNOT(*q))
    rho = get_backend("density_matrix", noise=cirq.depolarize(0.1)).density_matrix(circuit)
    ref = cirq.DensityMatrixSimulator(noise=NoiseModel(channel=cirq.depolarize(0.1)).to_cirq()).simulate(
        circuit).final_density_matrix
    np.testing.assert_allclose(rho, ref, atol=1e-6)
    assert np.real(np.trace(rho @ rho)) < 0.95                      # mixed


def test_folding_is_the_explicitly_folded_circuit() -> None:
    circuit, noise, qubits = _random_case(5)
    dm = DensityMatrixBackend(noise=noise)
    folded = circuit + cirq.inverse(circuit) + circuit + cirq.inverse(circuit) + circuit
    # cirq.inverse of a decomposing gate may decompose; compare through cirq's simulator on the same folding
    ref = cirq.DensityMatrixSimulator(noise=noise.to_cirq(), dtype=np.complex128).simulate(
        folded, qubit_order=qubits).final_density_matrix
    np.testing.assert_allclose(dm.density_matrix(circuit, qubits=qubits, fold=5), ref, atol=1e-6)


def test_shots_sample_the_noisy_probabilities() -> None:
    spec = CircuitSpec(n_qubits=2, layers=1)
    X, theta = np.array([[0.3, 0.7]]), np.linspace(-1, 1, spec.n_params)
    exact = get_backend("density_matrix", noise="ionq_aria").expectations(spec, X, theta)
    sampled = get_backend("density_matrix", noise="ionq_aria", shots=20_000, seed=0).expectations(spec, X, theta)
    assert np.all(np.abs(sampled - exact) < 5 * np.sqrt(1.0 / 20_000))
    counts = get_backend("density_matrix", noise="ionq_aria").sample(spec, X, theta, shots=100, seed=3)
    assert sum(counts[0].values()) == 100


@pytest.mark.parametrize("options", [{"noise": "ionq_forte_typo"}, {"noise": {"depolarizing_1q": 1.5}},
                                     {"noise": {"bogus": 0.1}}, {"noise": 3}, {"shots": 0},
                                     {"mitigation": {"zne": "cubic"}}, {"mitigation": {"scale_factors": (1, 2)}}])
def test_bad_options_are_typed_errors(options) -> None:
    with pytest.raises(QStoreError) as err:
        get_backend("density_matrix", **options)
    assert err.value.code == "invalid_parameters"


def test_bad_fold_and_measurements_are_refused() -> None:
    q = cirq.LineQubit(0)
    dm = get_backend("density_matrix")
    for call in (lambda: dm.density_matrix(cirq.Circuit(cirq.X(q)), fold=2),
                 lambda: dm.density_matrix(cirq.Circuit(cirq.X(q), cirq.measure(q)))):
        with pytest.raises(QStoreError) as err:
            call()
        assert err.value.code == "invalid_parameters"


def test_fake_ionq_qpu_honours_a_noise_model() -> None:
    from qstore.circuits.ionq_backend import IonQBackend

    from .fake_ionq import FakeIonQ

    spec = CircuitSpec(2, 2)
    X, theta = np.array([[0.2, 0.9]]), np.linspace(-2, 2, spec.n_params)
    with FakeIonQ(noise={"depolarizing_2q": 0.2, "readout_01": 0.05, "readout_10": 0.05}) as fake:
        backend = IonQBackend(api_key=fake.api_key, remote_host=fake.url, target="qpu", shots=20_000,
                              budget_usd=1e6, poll_interval=0.01, job_timeout=10.0, seed=1)
        measured = backend.expectations(spec, X, theta)
        compiled = backend.circuits(spec, spec.encode(X), theta)[0]
    unmeasured = cirq.Circuit(op for op in compiled.all_operations() if not cirq.is_measurement(op))
    noisy = DensityMatrixBackend(noise=fake.noise)
    probs = apply_readout(np.real(np.diag(noisy.density_matrix(unmeasured, qubits=spec.qubits)))[None], noisy.readout)
    expected = probs @ spec.observables.signs.T
    ideal = get_backend("statevector").expectations(spec, X, theta)
    assert np.all(np.abs(measured - expected) < 5 / np.sqrt(20_000)), (measured, expected)
    assert np.all(np.abs(expected - ideal) > 0.05)
