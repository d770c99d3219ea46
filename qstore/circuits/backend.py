"""The backend interface and ``get_backend``.

A backend runs a batch of the spec's circuits. It implements two methods over
resolved inputs, ``execute`` (Z expectations) and ``counts`` (shot counts); the
public ``expectations`` and ``sample`` validate features and parameters, encode
them, and call those. Gradients are separate transforms (``gradients``) that
only call ``execute``, so they work on every backend; a backend that can
differentiate exactly (statevector) also has ``vjp`` and ``jacobian``.
"""
from __future__ import annotations

import abc
from typing import Any

import numpy as np
from qstore_client.errors import InvalidArgument

from .observables import ObservablesLike, ZObservables, z_observables
from .spec import CircuitSpec


class Backend(abc.ABC):
    """Runs ``CircuitSpec`` circuits for a batch of (input angles, parameters)."""

    name: str = "backend"
    #: shots per expectation estimate; None means exact expectations
    shots: int | None = None

    @abc.abstractmethod
    def execute(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray,
                observables: ZObservables) -> np.ndarray:
        """Expectations (N, n_obs) for input angles (N, n_inputs) and theta (P,) or (N, P)."""

    @abc.abstractmethod
    def counts(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, shots: int,
               seed: int | None = None) -> list[dict[str, int]]:
        """Measure all qubits ``shots`` times per row: one {bitstring: count} per row."""

    def expectations(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
                     observables: ObservablesLike | ZObservables | None = None) -> np.ndarray:
        """<O_k> for features X (B, F) and theta (P,) or (B, P) -> (B, n_obs) float64.

        ``observables`` defaults to Z on ``spec.readout``; an int means Z on that
        qubit, a tuple of ints the product of their Z.
        """
        X, theta, obs = self.prepare(spec, X, theta, observables)
        return self.execute(spec, spec.encoder.angles(X), theta, obs)

    def sample(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, shots: int,
               seed: int | None = None) -> list[dict[str, int]]:
        """Bitstring counts (qubit 0 first), one dict per row of X."""
        X, theta, _ = self.prepare(spec, X, theta, None)
        return self.counts(spec, spec.encoder.angles(X), theta, check_shots(shots), seed)

    @staticmethod
    def prepare(spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
                observables: ObservablesLike | ZObservables | None
                ) -> tuple[np.ndarray, np.ndarray, ZObservables]:
        """Validated (X, theta, observables) for a call."""
        X = spec.check_features(X)
        theta = spec.check_params(theta, X.shape[0])
        obs = spec.observables if observables is None else z_observables(observables, spec.n_qubits)
        return X, theta, obs


def check_shots(shots: Any) -> int:
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise InvalidArgument(f"shots must be a positive integer, got {shots!r}", code="invalid_parameters")
    return int(shots)


def check_execute_args(spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    angles = spec.check_angles(angles)
    return angles, spec.check_params(theta, angles.shape[0])


def backend_names() -> tuple[str, ...]:
    return ("statevector", "cirq", "cirq-density-matrix", "ionq")


def get_backend(name: str = "statevector", **options: Any) -> Backend:
    """Build a backend by name.

    * ``statevector``: ``StatevectorBackend(dtype=np.complex128, shots=None, seed=None, ...)``
    * ``cirq``: ``CirqBackend(shots=None, seed=None)`` on ``cirq.Simulator``
    * ``cirq-density-matrix``: ``CirqBackend(density_matrix=True, noise=..., ...)``
    * ``ionq``: ``IonQBackend(api_key=..., remote_host=..., target=..., budget_usd=...)``
    """
    if name == "statevector":
        from .statevector import StatevectorBackend as cls
    elif name == "cirq":
        from .cirq_backend import CirqBackend as cls
    elif name == "cirq-density-matrix":
        from .cirq_backend import CirqBackend as cls
        options = {"density_matrix": True, **options}
    elif name == "ionq":
        from .ionq_backend import IonQBackend as cls
    else:
        raise InvalidArgument(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}",
                              code="unknown_backend")
    try:
        return cls(**options)
    except TypeError as exc:
        raise InvalidArgument(f"bad options for backend {name!r}: {exc}", code="invalid_parameters") from None
