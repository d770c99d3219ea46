"""expectations_vjp: one forward pass for a training step's outputs and gradients."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.circuits.spec import CircuitSpec
from qstore.circuits.statevector import StatevectorBackend
from qstore.training.models import Runtime


@pytest.mark.parametrize("circuit", [dict(n_qubits=5, layers=3, n_features=5),
                                     dict(n_qubits=4, layers=2, encoding="amplitude", n_features=10),
                                     dict(n_qubits=4, layers=3, reupload=True, n_features=4)])
@pytest.mark.parametrize("per_sample", [False, True])
def test_pullback_equals_a_separate_vjp_across_chunks_and_threads(circuit: dict, per_sample: bool) -> None:
    spec = CircuitSpec(**circuit)
    backend = StatevectorBackend(threads=2, chunk_size=8)             # 37 rows: 5 chunks on 2 threads
    rng = np.random.default_rng(0)
    X = rng.random((37, spec.n_features))
    theta = rng.random((37, spec.n_params) if per_sample else spec.n_params)
    g = rng.normal(size=(37, len(spec.observables)))
    values, pullback = backend.expectations_vjp(spec, X, theta)
    # angle encoding with shared theta runs through fused_kernels: equal up to round-off
    np.testing.assert_allclose(values, backend.expectations(spec, X, theta), atol=1e-12, rtol=0)
    for _ in range(2):                                                # callable again (retain_graph)
        got, want = pullback(g), backend.vjp(spec, X, theta, g)
        np.testing.assert_allclose(got[0], want[0], atol=1e-12, rtol=0)
        np.testing.assert_allclose(got[1], want[1], atol=1e-12, rtol=0)


def test_bad_cotangent_is_refused() -> None:
    spec = CircuitSpec(3, 1, n_features=3)
    _, pullback = StatevectorBackend().expectations_vjp(spec, np.full((2, 3), 0.5), np.zeros(spec.n_params))
    with pytest.raises(Exception) as exc:
        pullback(np.ones((3, 1)))
    assert getattr(exc.value, "code", None) == "invalid_parameters"


def test_runtime_forward_with_parameter_shift_matches_adjoint() -> None:
    spec = CircuitSpec(3, 2, n_features=3)
    rng = np.random.default_rng(2)
    X, theta = rng.random((5, 3)), rng.random(spec.n_params)
    g = rng.normal(size=(5, len(spec.observables)))
    z_ps, pb_ps = Runtime(gradient="parameter-shift").forward(spec, X, theta, inputs=True)
    z_adj, pb_adj = Runtime().forward(spec, X, theta, inputs=True)
    np.testing.assert_allclose(z_ps, z_adj, atol=1e-12)
    for a, b in zip(pb_ps(g), pb_adj(g)):
        np.testing.assert_allclose(a, b, atol=1e-10)
