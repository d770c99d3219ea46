"""The fused whole-circuit kernels (``fused_kernels``) against cirq and the general statevector path."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.circuits import CircuitSpec, CirqBackend, StatevectorBackend, vjp
from qstore.circuits import statevector as sv

# Every code path of the kernels: 1 qubit (no high half in the product state), 1 layer (the tape
# holds layer 0's state), 2 layers (layer 0 built in a spare slot), deeper circuits, fewer
# features than qubits, each entanglement pattern, Z-products and a readout subset.
CASES = [
    (dict(n_qubits=1, layers=1), [0]),
    (dict(n_qubits=1, layers=3), [0]),
    (dict(n_qubits=2, layers=2, entanglement="circular"), [0, (0, 1)]),
    (dict(n_qubits=3, layers=1, entanglement="full", n_features=2), [2, (0, 2)]),
    (dict(n_qubits=4, layers=4, entanglement="circular", n_features=3), [0, 3, (1, 2, 3)]),
    (dict(n_qubits=5, layers=3, entanglement="linear", readout=(4, 1)), None),
]


@pytest.fixture
def fused_calls(monkeypatch) -> dict[str, int]:
    """Counts the fused kernels' calls (they run unchanged), so a test fails if the fast path is skipped."""
    calls = {"forward": 0, "backward": 0}
    for name in calls:
        kernel = getattr(sv.fused, name)

        def counted(*args, _kernel=kernel, _name=name):
            calls[_name] += 1
            return _kernel(*args)

        monkeypatch.setattr(sv.fused, name, counted)
    return calls


@pytest.mark.parametrize("case,observables", CASES)
def test_fused_pullback_matches_cirq_parameter_shift(rng, fused_calls, case: dict, observables) -> None:
    spec = CircuitSpec(**case)
    X = rng.uniform(-1.0, 1.0, size=(3, spec.n_features))
    theta = rng.uniform(-np.pi, np.pi, spec.n_params)
    n_obs = len(observables) if observables is not None else len(spec.readout)
    g = rng.normal(size=(3, n_obs))
    values, pullback = StatevectorBackend().expectations_vjp(spec, X, theta, observables)
    g_theta, g_x = pullback(g)
    assert fused_calls == {"forward": 1, "backward": 1}
    cirq_backend = CirqBackend()
    np.testing.assert_allclose(values, cirq_backend.expectations(spec, X, theta, observables), atol=1e-6)
    ps_theta, ps_x = vjp(cirq_backend, spec, X, theta, g, observables, method="parameter-shift")
    np.testing.assert_allclose(g_theta, ps_theta, atol=1e-6)
    np.testing.assert_allclose(g_x, ps_x, atol=1e-6)


@pytest.mark.parametrize("entanglement", ["linear", "circular", "full"])
def test_fused_path_equals_the_general_path_at_8_qubits(rng, fused_calls, entanglement: str) -> None:
    """The benchmark's shape (8 qubits, 3 layers, a batch of 32, all Z) and a short last batch,
    against the layer-by-layer kernels (vjp is not fused)."""
    spec = CircuitSpec(8, 3, entanglement=entanglement)
    backend = StatevectorBackend()
    theta = rng.uniform(-np.pi, np.pi, spec.n_params)
    for batch in (32, 14):
        X = rng.uniform(0.0, 1.0, size=(batch, 8))
        g = rng.normal(size=(batch, 8))
        values, pullback = backend.expectations_vjp(spec, X, theta)
        g_theta, g_x = pullback(g)
        want_theta, want_x = backend.vjp(spec, X, theta, g)
        np.testing.assert_allclose(values, backend.expectations(spec, X, theta), atol=1e-12, rtol=0)
        np.testing.assert_allclose(g_theta, want_theta, atol=1e-12, rtol=0)
        np.testing.assert_allclose(g_x, want_x, atol=1e-12, rtol=0)
    assert fused_calls == {"forward": 2, "backward": 2}


def test_fused_pullback_runs_again_after_consuming_its_tape(rng, fused_calls) -> None:
    """The backward pass reuses the tape's slots; a second call (torch's retain_graph) refills it."""
    spec = CircuitSpec(4, 3, n_features=4)
    X, theta = rng.uniform(size=(5, 4)), rng.uniform(-np.pi, np.pi, spec.n_params)
    _, pullback = StatevectorBackend().expectations_vjp(spec, X, theta)
    first, second = pullback(np.ones((5, 4))), pullback(np.ones((5, 4)))
    assert fused_calls == {"forward": 2, "backward": 2}
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    other = pullback(np.eye(5, 4))
    assert not np.allclose(other[0], first[0])


@pytest.mark.parametrize("circuit,theta_shape", [(dict(reupload=True), "shared"), ({}, "per_sample")])
def test_circuits_outside_the_fused_case_take_the_general_path(rng, fused_calls, circuit: dict,
                                                               theta_shape: str) -> None:
    spec = CircuitSpec(3, 2, n_features=3, **circuit)
    X = rng.uniform(size=(4, 3))
    theta = rng.uniform(-np.pi, np.pi, (4, spec.n_params) if theta_shape == "per_sample" else spec.n_params)
    _, pullback = StatevectorBackend().expectations_vjp(spec, X, theta)
    pullback(np.ones((4, 3)))
    assert fused_calls == {"forward": 0, "backward": 0}


@pytest.mark.parametrize("bad", ["features", "theta"])
def test_non_finite_inputs_are_refused_as_on_the_general_path(rng, fused_calls, bad: str) -> None:
    """The fused forward checks finiteness itself; a NaN still gets the usual error."""
    spec = CircuitSpec(3, 2, n_features=3)
    X, theta = rng.uniform(size=(4, 3)), rng.uniform(-np.pi, np.pi, spec.n_params)
    (X if bad == "features" else theta)[1] = np.nan
    with pytest.raises(Exception) as exc:
        StatevectorBackend().expectations_vjp(spec, X, theta)
    assert getattr(exc.value, "code", None) == ("invalid_features" if bad == "features" else "invalid_parameters")
    assert fused_calls["forward"] == 1 and fused_calls["backward"] == 0


def test_non_finite_cotangent_is_refused_and_the_tape_kept(rng, fused_calls) -> None:
    spec = CircuitSpec(3, 2, n_features=3)
    X, theta = rng.uniform(size=(4, 3)), rng.uniform(-np.pi, np.pi, spec.n_params)
    backend = StatevectorBackend()
    _, pullback = backend.expectations_vjp(spec, X, theta)
    g = np.ones((4, 3))
    g[2, 1] = np.inf
    with pytest.raises(Exception) as exc:
        pullback(g)
    assert getattr(exc.value, "code", None) == "invalid_parameters"
    got, want = pullback(np.ones((4, 3))), backend.vjp(spec, X, theta, np.ones((4, 3)))
    assert fused_calls == {"forward": 1, "backward": 2}           # no refill: the refused call kept the tape
    np.testing.assert_allclose(got[0], want[0], atol=1e-12, rtol=0)
    np.testing.assert_allclose(got[1], want[1], atol=1e-12, rtol=0)


def test_inputs_that_need_converting_still_take_the_fused_path(fused_calls) -> None:
    spec = CircuitSpec(2, 1, n_features=2)
    backend = StatevectorBackend()
    values, pullback = backend.expectations_vjp(spec, [0.25, 0.5], [0.1] * spec.n_params)   # one row, lists
    want = backend.expectations(spec, np.array([[0.25, 0.5]]), np.full(spec.n_params, 0.1))
    np.testing.assert_allclose(values, want, atol=1e-12, rtol=0)
    pullback([[1.0, -1.0]])
    assert fused_calls == {"forward": 1, "backward": 1}
