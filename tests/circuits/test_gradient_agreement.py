"""Adjoint, parameter-shift, finite differences and SPSA agree with each other."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.circuits import (
    CircuitSpec,
    CirqBackend,
    StatevectorBackend,
    finite_differences,
    jacobian,
    parameter_shift,
    vjp,
)

CASES = [
    dict(n_qubits=3, layers=2, encoding="angle", entanglement="linear"),
    dict(n_qubits=3, layers=2, encoding="angle", entanglement="full", reupload=True),
    dict(n_qubits=4, layers=1, encoding="angle", entanglement="circular", n_features=2),
    dict(n_qubits=3, layers=2, encoding="amplitude", entanglement="circular", n_features=6),
]


def _inputs(spec: CircuitSpec, rng: np.random.Generator, per_sample: bool, batch: int = 2):
    X = rng.uniform(-1.0, 1.0, size=(batch, spec.n_features))
    theta = rng.uniform(-np.pi, np.pi, size=(batch, spec.n_params) if per_sample else spec.n_params)
    return X, theta


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("per_sample", [False, True])
def test_adjoint_equals_parameter_shift_on_cirq(rng, case: dict, per_sample: bool) -> None:
    spec = CircuitSpec(**case)
    X, theta = _inputs(spec, rng, per_sample)
    observables = [0, (0, spec.n_qubits - 1)]
    adj_theta, adj_x = jacobian(StatevectorBackend(), spec, X, theta, observables, method="adjoint")
    ps_theta, ps_x = jacobian(CirqBackend(), spec, X, theta, observables, method="parameter-shift")
    np.testing.assert_allclose(adj_theta, ps_theta, atol=1e-6)
    np.testing.assert_allclose(adj_x, ps_x, atol=1e-6)
    assert adj_theta.shape == (2, 2, spec.n_params) and adj_x.shape == (2, 2, spec.n_features)


@pytest.mark.parametrize("case", CASES)
def test_finite_differences_agree(rng, case: dict) -> None:
    spec = CircuitSpec(**case)
    X, theta = _inputs(spec, rng, per_sample=False, batch=3)
    sv = StatevectorBackend()
    adj_theta, adj_x = jacobian(sv, spec, X, theta, method="adjoint")
    fd_theta, fd_x = jacobian(sv, spec, X, theta, method="finite-diff", step=1e-4)
    np.testing.assert_allclose(fd_theta, adj_theta, atol=1e-4)
    np.testing.assert_allclose(fd_x, adj_x, atol=1e-4)


def test_parameter_shift_with_shots_is_within_statistical_tolerance(rng) -> None:
    spec = CircuitSpec(3, 2, entanglement="circular")
    X, theta = _inputs(spec, rng, per_sample=False)
    shots = 4000
    exact_theta, exact_x = jacobian(StatevectorBackend(), spec, X, theta, method="adjoint")
    noisy_theta, noisy_x = jacobian(CirqBackend(shots=shots, seed=11), spec, X, theta, method="parameter-shift")
    # Each derivative is (f+ - f-)/2 of two independent estimates with variance <= 1/shots.
    sigma = np.sqrt(2.0 / shots) / 2.0
    z = np.concatenate([(noisy_theta - exact_theta).ravel(), ((noisy_x - exact_x) / np.pi).ravel()]) / sigma
    assert np.max(np.abs(z)) < 5.0
    assert np.mean(z ** 2) < 1.5          # a biased estimator would blow this up
    assert np.mean(z ** 2) > 0.05         # and shots really were sampled


def test_spsa_is_unbiased(rng) -> None:
    spec = CircuitSpec(3, 1)
    X, theta = _inputs(spec, rng, per_sample=False, batch=1)
    sv = StatevectorBackend()
    exact_theta, exact_x = jacobian(sv, spec, X, theta, method="adjoint")
    est_theta, est_x = jacobian(sv, spec, X, theta, method="spsa", draws=8000, c=0.01, seed=3)
    exact = np.concatenate([exact_theta.ravel(), exact_x.ravel()])
    est = np.concatenate([est_theta.ravel(), est_x.ravel()])
    # Each component's SPSA noise is about |gradient of its observable| / sqrt(draws), so the
    # expected error norm is |exact| * sqrt((P + F) / draws).
    expected = np.linalg.norm(exact) * np.sqrt((spec.n_params + spec.n_features) / 8000)
    assert np.linalg.norm(est - exact) < 3 * expected
    assert est @ exact / (np.linalg.norm(est) * np.linalg.norm(exact)) > 0.99


def test_vjp_contracts_the_jacobian_and_sums_shared_theta(rng) -> None:
    spec = CircuitSpec(4, 2, reupload=True, entanglement="full", readout=(0, 2))
    sv = StatevectorBackend()
    X, theta = _inputs(spec, rng, per_sample=False, batch=5)
    grad_out = rng.normal(size=(5, 2))
    jac_theta, jac_x = sv.jacobian(spec, X, theta)
    g_theta, g_x = sv.vjp(spec, X, theta, grad_out)
    np.testing.assert_allclose(g_theta, np.einsum("bk,bkp->p", grad_out, jac_theta), atol=1e-12)
    np.testing.assert_allclose(g_x, np.einsum("bk,bkf->bf", grad_out, jac_x), atol=1e-12)
    assert sv.vjp(spec, X, theta, grad_out, inputs=False)[1] is None
    per_theta = np.broadcast_to(theta, (5, spec.n_params))
    g_each, _ = sv.vjp(spec, X, per_theta, grad_out)
    assert g_each.shape == (5, spec.n_params)
    np.testing.assert_allclose(g_each.sum(axis=0), g_theta, atol=1e-12)
    ps_theta, ps_x = vjp(sv, spec, X, theta, grad_out, method="parameter-shift")
    np.testing.assert_allclose(ps_theta, g_theta, atol=1e-9)
    np.testing.assert_allclose(ps_x, g_x, atol=1e-9)


def test_transforms_only_build_evaluations(rng) -> None:
    spec = CircuitSpec(2, 1)
    X, theta = _inputs(spec, rng, per_sample=False)
    evals, post = parameter_shift(spec, X, theta)
    assert len(evals) == 2 * 2 * (spec.n_params + spec.n_inputs)
    values = StatevectorBackend().execute(spec, evals.angles, evals.theta, spec.observables)
    jac_theta, jac_x = post(values)
    assert jac_theta.shape == (2, 2, 6) and jac_x.shape == (2, 2, 2)
    evals, post = finite_differences(spec, X, theta, inputs=False)
    assert len(evals) == 2 * 2 * spec.n_params
    assert post(np.zeros((len(evals), 2)))[1] is None


def test_amplitude_input_gradient_matches_normalisation_chain(rng) -> None:
    spec = CircuitSpec(2, 1, encoding="amplitude")
    X, theta = _inputs(spec, rng, per_sample=False, batch=1)
    _, g_x = StatevectorBackend().vjp(spec, X, theta, np.ones((1, 2)))
    # Expectations depend on X only through X/|X|, so the gradient is orthogonal to X.
    assert abs(float(g_x[0] @ X[0])) < 1e-10
