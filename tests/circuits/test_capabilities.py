"""Every registered backend declares what it can do, and does exactly that.

``supports_adjoint``: ``vjp``/``jacobian`` give the parameter-shift gradient, else a typed refusal
(and ``gradient_method`` refuses ``adjoint`` for it). ``supports_metric``: ``metric_tensor``
works, else a typed refusal (and QNG is refused up front). ``supports_shots``: shot-sampled
expectations and ``sample``.
"""
from __future__ import annotations

import numpy as np
import pytest

from qstore.circuits import CircuitSpec, backend_names, get_backend, gradient_method, require_metric, vjp
from qstore.circuits.backend import Backend
from qstore_client.errors import QStoreError

SPEC = CircuitSpec(2, 1)
LOCAL = [name for name in backend_names() if name != "ionq"]      # ionq: tests/circuits/test_ionq_backend.py


def _batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(0, 1, (3, 2)), rng.uniform(-np.pi, np.pi, SPEC.n_params)


def _code(fn) -> str:
    with pytest.raises(QStoreError) as info:
        fn()
    return info.value.code


def test_every_registered_backend_is_a_backend() -> None:
    from qstore.circuits import registry

    for name, (cls, _) in registry._BACKENDS.items():
        assert issubclass(cls, Backend), name
        for flag in ("supports_adjoint", "supports_metric", "supports_shots"):
            assert isinstance(getattr(cls, flag), bool), (name, flag)


@pytest.mark.parametrize("name", LOCAL)
def test_adjoint_capability(name: str, rng: np.random.Generator) -> None:
    backend = get_backend(name)
    X, theta = _batch(rng)
    g = np.ones((3, len(SPEC.observables)))
    if backend.supports_adjoint:
        assert gradient_method("adjoint", backend) == "adjoint"
        exact, _ = backend.vjp(SPEC, X, theta, g)
        shift, _ = vjp(backend, SPEC, X, theta, g, method="parameter-shift")
        np.testing.assert_allclose(exact, shift, atol=1e-9)
    else:
        assert _code(lambda: gradient_method("adjoint", backend)) == "unknown_gradient"
        assert _code(lambda: backend.vjp(SPEC, X, theta, g)) == "invalid_argument"
        assert _code(lambda: backend.jacobian(SPEC, X, theta)) == "invalid_argument"


@pytest.mark.parametrize("name", LOCAL)
def test_metric_capability(name: str, rng: np.random.Generator) -> None:
    backend = get_backend(name)
    X, theta = _batch(rng)
    if backend.supports_metric:
        require_metric(backend)
        g = backend.metric_tensor(SPEC, X, theta)
        assert g.shape == (3, SPEC.n_params, SPEC.n_params)
        np.testing.assert_allclose(g, g.transpose(0, 2, 1), atol=1e-12)
    else:
        assert _code(lambda: require_metric(backend)) == "invalid_argument"
        assert _code(lambda: backend.metric_tensor(SPEC, X, theta)) == "invalid_argument"


@pytest.mark.parametrize("name", LOCAL)
def test_shots_capability(name: str, rng: np.random.Generator) -> None:
    backend = get_backend(name, shots=4000, seed=1)
    assert backend.supports_shots
    X, theta = _batch(rng)
    exact = get_backend(name).expectations(SPEC, X, theta)
    np.testing.assert_allclose(backend.expectations(SPEC, X, theta), exact, atol=0.1)
    counts = backend.sample(SPEC, X, theta, shots=50, seed=2)
    assert [sum(c.values()) for c in counts] == [50, 50, 50]
