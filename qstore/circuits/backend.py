"""The backend interface and the capabilities a backend declares.

A backend runs a batch of the spec's circuits. It implements two methods over
resolved inputs, ``execute`` (Z expectations) and ``counts`` (shot counts); the
public ``expectations`` and ``sample`` validate features and parameters, encode
them, and call those. Gradients are separate transforms (``gradients``) that
only call ``execute``, so they work on every backend.

What else a backend can do it declares as class attributes, never found by
probing: ``supports_adjoint`` (exact ``vjp`` and ``jacobian``),
``supports_metric`` (exact ``states`` and ``metric_tensor``),
and ``supports_shots`` (shot-sampled expectations and ``sample``). The rules built on them live in one place
each: ``gradients.gradient_method`` (adjoint) and ``require_metric`` (QNG).
Backends are built by name in ``registry``.
"""
from __future__ import annotations

import abc
import copy
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from qstore.errors import QStoreError, error

from .observables import ObservablesLike, ZObservables, z_observables
from .spec import CircuitSpec

#: cotangent (B, n_obs) -> (grad_theta, grad_X or None), as ``Backend.vjp`` returns them
Pullback = Callable[[np.ndarray], tuple[np.ndarray, "np.ndarray | None"]]


class Backend(abc.ABC):
    """Runs ``CircuitSpec`` circuits for a batch of (input angles, parameters)."""

    name: str = "backend"
    #: shots per expectation estimate; None means exact expectations
    shots: int | None = None

    supports_adjoint: ClassVar[bool] = False
    supports_metric: ClassVar[bool] = False
    supports_shots: ClassVar[bool] = True

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

    def with_shots(self, shots: int | None) -> Backend:
        """A copy that estimates expectations from ``shots`` samples (None: exact), sharing the sampler."""
        clone = copy.copy(self)
        clone.shots = None if shots is None else check_shots(shots)
        return clone

    # -- exact methods, for backends that declare them ------------------------------------
    def vjp(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, grad_out: np.ndarray,
            observables: ObservablesLike | ZObservables | None = None, inputs: bool = True
            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Adjoint vector-Jacobian product of ``expectations`` (``supports_adjoint``)."""
        raise _unsupported(self, "adjoint gradients")

    def expectations_vjp(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
                         observables: ObservablesLike | ZObservables | None = None, inputs: bool = True
                         ) -> tuple[np.ndarray, Pullback]:
        """``expectations`` and a pullback that runs ``vjp`` (``supports_adjoint``); a backend may
        share work between the two (the statevector keeps its forward states)."""
        values = self.expectations(spec, X, theta, observables)
        return values, lambda grad_out: self.vjp(spec, X, theta, grad_out, observables, inputs)

    def jacobian(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
                 observables: ObservablesLike | ZObservables | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Adjoint per-sample Jacobians (``supports_adjoint``)."""
        raise _unsupported(self, "adjoint gradients")

    def metric_tensor(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, kind: str = "full") -> np.ndarray:
        """Exact Fubini–Study metric (B, P, P) (``supports_metric``)."""
        raise _unsupported(self, "the exact metric tensor")

    @staticmethod
    def prepare(spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
                observables: ObservablesLike | ZObservables | None
                ) -> tuple[np.ndarray, np.ndarray, ZObservables]:
        """Validated (X, theta, observables) for a call."""
        X = spec.check_features(X)
        theta = spec.check_params(theta, X.shape[0])
        obs = spec.observables if observables is None else z_observables(observables, spec.n_qubits)
        return X, theta, obs


def _unsupported(backend: Backend, what: str) -> QStoreError:
    return error("invalid_argument", f"backend {backend.name!r} does not compute {what}")


def require_metric(backend: Backend) -> None:
    """QNG's rule: it needs the exact metric tensor, which only some backends compute."""
    if not backend.supports_metric:
        raise error("invalid_argument", f"QNG needs the exact metric tensor of the statevector backend; backend "
                                        f"{backend.name!r} has none")


def check_shots(shots: Any) -> int:
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or shots < 1:
        raise error("invalid_parameters", f"shots must be a positive integer, got {shots!r}")
    return int(shots)


def check_execute_args(spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    angles = spec.check_angles(angles)
    return angles, spec.check_params(theta, angles.shape[0])
