"""Backends by name: ``get_backend`` and ``backend_names``.

It lives apart from ``backend`` so the base module never imports its subclasses.
"""
from __future__ import annotations

from typing import Any

from qstore.errors import construct, error

from .backend import Backend
from .cirq_backend import CirqBackend
from .density_matrix import DensityMatrixBackend
from .ionq_backend import IonQBackend
from .statevector import StatevectorBackend

_BACKENDS: dict[str, tuple[type[Backend], dict[str, Any]]] = {
    "statevector": (StatevectorBackend, {}),
    "cirq": (CirqBackend, {}),
    "cirq-density-matrix": (CirqBackend, {"density_matrix": True}),
    "ionq": (IonQBackend, {}),
    "density_matrix": (DensityMatrixBackend, {}),
}


def backend_names() -> tuple[str, ...]:
    return tuple(_BACKENDS)


def get_backend(name: str = "statevector", **options: Any) -> Backend:
    """Build a backend by name.

    * ``statevector``: ``StatevectorBackend(dtype=np.complex128, shots=None, seed=None, ...)``
    * ``cirq``: ``CirqBackend(shots=None, seed=None)`` on ``cirq.Simulator``
    * ``cirq-density-matrix``: ``CirqBackend(density_matrix=True, noise=..., ...)``
    * ``density_matrix``: ``DensityMatrixBackend(noise=None | "ionq_aria" | NoiseModel | cirq channel,
      shots=None, seed=None, mitigation=None)``
    * ``ionq``: ``IonQBackend(api_key=..., remote_host=..., target=..., budget_usd=...)``
    """
    if name not in _BACKENDS:
        raise error("unknown_backend", f"unknown backend {name!r}; choose one of {', '.join(backend_names())}")
    cls, preset = _BACKENDS[name]
    return construct(cls, {**preset, **options}, f"backend {name!r}", code="invalid_parameters")
