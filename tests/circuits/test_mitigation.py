"""Zero-noise extrapolation and readout mitigation under the ionq_aria preset: at least 2x less error."""
from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

from qstore.circuits import CircuitSpec, get_backend
from qstore.circuits.mitigation import Mitigation, calibrate_readout, extrapolate
from qstore.circuits.noise import PRESETS
from qstore.vqe import minimize

MITIGATED = {"noise": "ionq_aria", "mitigation": {"zne": "richardson", "readout": True}}


def test_extrapolation_is_exact_on_polynomials() -> None:
    c = (1, 3, 5)
    quadratic = np.array([[2 - 0.3 * x + 0.05 * x * x] for x in c])
    assert extrapolate(c, quadratic, "richardson")[0] == pytest.approx(2.0, abs=1e-12)
    line = np.array([[1.5 - 0.2 * x] for x in c])
    assert extrapolate(c, line, "linear")[0] == pytest.approx(1.5, abs=1e-12)


def test_readout_calibration_inverts_the_preset_confusion() -> None:
    # calibration circuits carry gate noise too (as on hardware): close to, not exactly, the model's inverse
    inverse = np.linalg.inv(PRESETS["ionq_aria"].readout)
    for m in calibrate_readout(get_backend("density_matrix", noise="ionq_aria"), 3):
        np.testing.assert_allclose(m, inverse, atol=2e-3)


def test_zne_and_readout_mitigation_halve_the_error_on_random_circuits() -> None:
    rng = np.random.default_rng(7)
    noisy, mitigated = get_backend("density_matrix", noise="ionq_aria"), get_backend("density_matrix", **MITIGATED)
    exact = get_backend("statevector")
    errors = []
    for _ in range(8):
        spec = CircuitSpec(n_qubits=4, layers=int(rng.integers(2, 5)), entanglement="circular")
        X, theta = rng.random((1, 4)), rng.uniform(-np.pi, np.pi, spec.n_params)
        truth = exact.expectations(spec, X, theta)
        errors.append((np.abs(noisy.expectations(spec, X, theta) - truth).mean(),
                       np.abs(mitigated.expectations(spec, X, theta) - truth).mean()))
    errors = np.array(errors)
    for k, (raw, mit) in enumerate(errors):
        print(f"circuit {k}: |error| noisy {raw:.5f} mitigated {mit:.5f} ({raw / mit:.1f}x)")
    assert errors[:, 0].mean() >= 2 * errors[:, 1].mean(), errors


def test_zne_and_readout_mitigation_halve_the_vqe_energy_error() -> None:
    q = cirq.LineQubit.range(4)
    hamiltonian = sum((cirq.Z(q[i]) * cirq.Z(q[i + 1]) for i in range(3)), cirq.PauliSum()) + \
        sum((0.7 * cirq.X(qi) for qi in q), cirq.PauliSum())
    spec = CircuitSpec(n_qubits=4, layers=2)
    rng = np.random.default_rng(3)
    result = minimize(spec, hamiltonian, rng.uniform(-0.3, 0.3, spec.n_params), steps=60, lr=0.1)
    circuit, theta_symbols, input_symbols = spec.to_cirq()
    bare = cirq.resolve_parameters(circuit, {s: 0.0 for s in input_symbols})
    errors = []
    for params in (result.params, rng.uniform(-np.pi, np.pi, spec.n_params)):
        resolver = dict(zip(theta_symbols, params))
        truth = get_backend("density_matrix").energy(bare, hamiltonian, resolver, q)
        raw = abs(get_backend("density_matrix", noise="ionq_aria").energy(bare, hamiltonian, resolver, q) - truth)
        mit = abs(get_backend("density_matrix", **MITIGATED).energy(bare, hamiltonian, resolver, q) - truth)
        print(f"VQE energy {truth:.4f}: |error| noisy {raw:.5f} mitigated {mit:.5f}")
        errors.append((raw, mit))
    errors = np.array(errors)
    assert errors[:, 0].mean() >= 2 * errors[:, 1].mean(), errors
    assert result.energy == pytest.approx(get_backend("density_matrix").energy(bare, hamiltonian,
                                                                               dict(zip(theta_symbols, result.params)),
                                                                               q), abs=1e-9)


def test_minimize_runs_on_a_mitigated_noisy_backend() -> None:
    q = cirq.LineQubit.range(2)
    a, b = sympy.symbols("a b")
    circuit = cirq.Circuit(cirq.ry(a).on(q[0]), cirq.ry(b).on(q[1]), cirq.CNOT(*q))
    hamiltonian = cirq.Z(q[0]) + cirq.Z(q[1])
    dm = get_backend("density_matrix", noise="ionq_aria", mitigation=Mitigation("linear"))
    result = minimize(circuit, hamiltonian, [0.4, -0.3], steps=40, lr=0.2, backend=dm)
    assert result.energy < -1.9 and result.energies[0] > result.energy


def test_zne_matches_mitiq() -> None:
    """Mitiq cannot be a dependency (its newest release, 1.1.0, requires cirq-core < 1.7); where it is
    importable anyway (``pip install --no-deps mitiq==1.1.0 tabulate``), our folding and fits must give its
    numbers."""
    mitiq_zne = pytest.importorskip("mitiq.zne", reason="mitiq 1.1.0 requires cirq-core<1.7 (docs/CIRCUITS.md)")
    from mitiq.zne.inference import LinearFactory, RichardsonFactory
    from mitiq.zne.scaling import fold_global

    rng = np.random.default_rng(4)
    q = cirq.LineQubit.range(3)
    dm = get_backend("density_matrix", noise="ionq_aria")
    z0 = cirq.PauliSum.from_pauli_strings([cirq.Z(q[0]) * cirq.Z(q[2])])
    for k in range(4):
        circuit = cirq.testing.random_circuit(q, n_moments=8, op_density=0.9, random_state=k,
                                              gate_domain={cirq.H: 1, cirq.CNOT: 2, cirq.rx(rng.uniform(0, 6)): 1,
                                                           cirq.ry(rng.uniform(0, 6)): 1, cirq.CZ: 2})

        def executor(c: cirq.Circuit) -> float:
            return dm.pauli_expectation(dm.density_matrix(c, qubits=q), z0, q)

        for fit, factory in (("richardson", RichardsonFactory), ("linear", LinearFactory)):
            theirs = mitiq_zne.execute_with_zne(circuit, executor, factory=factory([1, 3, 5]), scale_noise=fold_global)
            ours = get_backend("density_matrix", noise="ionq_aria",
                               mitigation={"zne": fit, "readout": False}).energy(circuit, z0, None, q)
            assert ours == pytest.approx(theirs, abs=1e-9), (k, fit)


async def test_mitigation_in_training_and_evaluation() -> None:
    """A trainer on the mitigated backend trains and scores through it; its class probabilities are closer to
    the noiseless model's than the unmitigated backend's are."""
    from qstore.training import VQC, Trainer
    from qstore.training.models import Runtime

    rng = np.random.default_rng(5)
    X = rng.random((24, 3))
    y = (X.sum(axis=1) > 1.5).astype(int)
    trainer = Trainer(None, VQC(3, 2), backend="density_matrix", backend_options=MITIGATED,
                      gradient="parameter-shift", batch_size=12, seed=0)
    history = await trainer.fit((X, y), epochs=2)
    assert len(history["loss"]) == 2 and await trainer.evaluate(X, y) >= 0.5
    model = trainer.model
    probs = {}
    backends = {"exact": get_backend("statevector"), "noisy": get_backend("density_matrix", noise="ionq_aria"),
                "mitigated": trainer.backend}
    for name, backend in backends.items():
        model.runtime = Runtime(backend, "parameter-shift")
        probs[name] = model.predict_proba(X)
    assert np.abs(probs["mitigated"] - probs["exact"]).mean() * 2 <= np.abs(probs["noisy"] - probs["exact"]).mean()
