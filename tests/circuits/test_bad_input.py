"""Bad input gets a clear error with a stable code, before any work is done."""
from __future__ import annotations

import time

import cirq
import numpy as np
import pytest

from qstore.circuits import (
    CircuitSpec,
    CompiledCircuit,
    StatevectorBackend,
    get_backend,
    gradient_method,
    jacobian,
    vjp,
)
from qstore_client.errors import InvalidArgument, LimitExceeded, QStoreError

SPEC = CircuitSpec(3, 2)


def _code(call) -> str:
    with pytest.raises(QStoreError) as err:
        call()
    return err.value.code


@pytest.mark.parametrize("backend", ["statevector", "cirq"])
def test_wrong_feature_count(backend: str) -> None:
    b = get_backend(backend)
    assert _code(lambda: b.expectations(SPEC, np.zeros((2, 4)), np.zeros(SPEC.n_params))) == "invalid_features"
    assert _code(lambda: b.expectations(SPEC, np.zeros((2, 2)), np.zeros(SPEC.n_params))) == "invalid_features"
    assert _code(lambda: b.expectations(SPEC, [["a", "b", "c"]], np.zeros(SPEC.n_params))) == "invalid_features"


def test_non_finite_values() -> None:
    sv = StatevectorBackend()
    X, theta = np.zeros((2, 3)), np.zeros(SPEC.n_params)
    assert _code(lambda: sv.expectations(SPEC, X, np.full(SPEC.n_params, np.nan))) == "invalid_parameters"
    bad_theta = theta.copy()
    bad_theta[4] = np.inf
    assert _code(lambda: sv.vjp(SPEC, X, bad_theta, np.ones((2, 3)))) == "invalid_parameters"
    X_nan = X.copy()
    X_nan[1, 1] = np.nan
    assert _code(lambda: sv.expectations(SPEC, X_nan, theta)) == "invalid_features"
    assert _code(lambda: sv.vjp(SPEC, X, theta, np.full((2, 3), np.inf))) == "invalid_parameters"
    amplitude = CircuitSpec(2, 1, encoding="amplitude")
    assert _code(lambda: sv.expectations(amplitude, np.zeros((1, 4)), np.zeros(6))) == "invalid_features"


def test_wrong_parameter_shapes() -> None:
    sv = StatevectorBackend()
    X = np.zeros((2, 3))
    assert _code(lambda: sv.expectations(SPEC, X, np.zeros(SPEC.n_params + 1))) == "invalid_parameters"
    assert _code(lambda: sv.expectations(SPEC, X, np.zeros((3, SPEC.n_params)))) == "invalid_parameters"
    assert _code(lambda: sv.vjp(SPEC, X, np.zeros(SPEC.n_params), np.ones((2, 2)))) == "invalid_parameters"
    assert _code(lambda: sv.expectations(SPEC, X, np.zeros(SPEC.n_params), [5])) == "invalid_parameters"
    assert _code(lambda: sv.expectations(SPEC, X, np.zeros(SPEC.n_params), [(0, 0)])) == "invalid_parameters"
    assert _code(lambda: sv.sample(SPEC, X, np.zeros(SPEC.n_params), shots=0)) == "invalid_parameters"


def test_too_many_qubits_is_refused_before_allocating() -> None:
    spec = CircuitSpec(40, 1)       # a state would need 16 TiB
    sv = StatevectorBackend()
    start = time.perf_counter()
    with pytest.raises(LimitExceeded) as err:
        sv.expectations(spec, np.zeros((1, 40)), np.zeros(spec.n_params))
    assert err.value.code == "too_many_qubits" and "max_memory_bytes" in err.value.message
    assert time.perf_counter() - start < 1.0
    small_limit = StatevectorBackend(max_memory_bytes=1 << 20)
    assert _code(lambda: small_limit.vjp(CircuitSpec(16, 1), np.zeros((1, 16)), np.zeros(48),
                                         np.ones((1, 16)))) == "too_many_qubits"
    assert _code(lambda: small_limit.states(CircuitSpec(10, 1), np.zeros((100, 10)), np.zeros(30))) \
        == "too_many_qubits"
    assert _code(lambda: CompiledCircuit(cirq.Circuit(cirq.X.on_each(*cirq.LineQubit.range(30))))) \
        == "too_many_qubits"


def test_unknown_names() -> None:
    assert _code(lambda: get_backend("qiskit")) == "unknown_backend"
    assert _code(lambda: get_backend("statevector", colour="blue")) == "invalid_parameters"
    assert _code(lambda: gradient_method("backprop")) == "unknown_gradient"
    cirq_backend = get_backend("cirq")
    X, theta = np.zeros((1, 3)), np.zeros(SPEC.n_params)
    assert _code(lambda: vjp(cirq_backend, SPEC, X, theta, np.ones((1, 3)), method="adjoint")) == "unknown_gradient"
    assert _code(lambda: jacobian(cirq_backend, SPEC, X, theta, method="adjoint")) == "unknown_gradient"


@pytest.mark.parametrize("kwargs,code", [
    (dict(n_qubits=0, layers=1), "invalid_parameters"),
    (dict(n_qubits=2, layers=0), "invalid_parameters"),
    (dict(n_qubits=2, layers=1, encoding="basis"), "invalid_parameters"),
    (dict(n_qubits=2, layers=1, entanglement="star"), "invalid_parameters"),
    (dict(n_qubits=2, layers=1, encoding="amplitude", reupload=True), "invalid_parameters"),
    (dict(n_qubits=2, layers=1, n_features=3), "invalid_features"),
    (dict(n_qubits=2, layers=1, encoding="amplitude", n_features=5), "invalid_features"),
    (dict(n_qubits=2, layers=1, readout=(2,)), "invalid_parameters"),
])
def test_bad_specs(kwargs: dict, code: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        CircuitSpec(**kwargs)
    assert err.value.code == code


def test_backend_options(monkeypatch) -> None:
    monkeypatch.delenv("IONQ_API_KEY", raising=False)
    assert _code(lambda: get_backend("cirq", noise={"depolarizing": 0.1})) == "invalid_parameters"
    assert _code(lambda: get_backend("cirq-density-matrix", noise={"dephasing": 0.1})) == "invalid_parameters"
    assert _code(lambda: get_backend("cirq-density-matrix", noise={"depolarizing": 1.5})) == "invalid_parameters"
    assert _code(lambda: get_backend("statevector", dtype=np.float32)) == "invalid_parameters"
    assert _code(lambda: get_backend("ionq", api_key="")) == "invalid_parameters"
