"""State derivatives and the Fubini–Study metric against finite differences of the state."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.circuits import CircuitSpec, StatevectorBackend, fubini_study_metric

H = 1e-5


def _fd_derivatives(sv: StatevectorBackend, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
    cols = []
    for k in range(spec.n_params):
        step = np.zeros(spec.n_params)
        step[k] = H
        cols.append((sv.states(spec, X, theta + step) - sv.states(spec, X, theta - step)) / (2 * H))
    return np.stack(cols, axis=1)


@pytest.mark.parametrize("spec", [CircuitSpec(3, 2, entanglement="circular"),
                                  CircuitSpec(2, 3, reupload=True, entanglement="full"),
                                  CircuitSpec(3, 1, encoding="amplitude")])
def test_metric_matches_finite_differences_of_the_state(rng, spec: CircuitSpec) -> None:
    sv = StatevectorBackend()
    X = rng.uniform(-1, 1, size=(2, spec.n_features))
    theta = rng.uniform(-np.pi, np.pi, size=spec.n_params)
    psi, derivs = sv.state_derivatives(spec, X, theta)
    fd = _fd_derivatives(sv, spec, X, theta)
    np.testing.assert_allclose(psi, sv.states(spec, X, theta), atol=1e-12)
    np.testing.assert_allclose(derivs, fd, atol=1e-6)
    reference = fubini_study_metric(psi, fd, "full")
    full = sv.metric_tensor(spec, X, theta, "full")
    np.testing.assert_allclose(full, reference, atol=1e-6)
    np.testing.assert_allclose(full, np.swapaxes(full, 1, 2), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(full) > -1e-9)               # positive semidefinite

    block = sv.metric_tensor(spec, X, theta, "block")
    size = 3 * spec.n_qubits
    mask = np.kron(np.eye(spec.layers), np.ones((size, size))).astype(bool)
    np.testing.assert_allclose(block[:, mask], full[:, mask], atol=1e-12)
    assert np.all(block[:, ~mask] == 0)
    diag = sv.metric_tensor(spec, X, theta, "diag")
    np.testing.assert_allclose(np.diagonal(diag, axis1=1, axis2=2), np.diagonal(full, axis1=1, axis2=2))
    # Every generator is a Pauli / 2, so each diagonal entry is (1 - <P>^2) / 4.
    assert np.all(np.diagonal(full, axis1=1, axis2=2) <= 0.25 + 1e-12)


def test_rz_entry_is_variance_of_z_over_four(rng) -> None:
    spec = CircuitSpec(1, 1)
    sv = StatevectorBackend()
    X, theta = np.array([[0.3]]), rng.uniform(-np.pi, np.pi, size=3)
    g = sv.metric_tensor(spec, X, theta)[0]
    z = sv.expectations(spec, X, theta)[0, 0]
    # The last gate is RZ, so d psi / d theta_2 = (-i/2) Z psi and g_22 = Var(Z) / 4.
    assert g[2, 2] == pytest.approx((1 - z ** 2) / 4, abs=1e-12)
