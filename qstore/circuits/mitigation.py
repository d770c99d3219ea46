"""Error mitigation: zero-noise extrapolation by unitary folding, and tensored readout correction.

* ZNE: run the circuit folded to U (U^dagger U)^k, noise scale c = 2k + 1 (1, 3, 5), and
  extrapolate the expectations to c = 0 with a Richardson (polynomial through all points)
  or a linear (least-squares) fit. Folding is global, as Mitiq's ``fold_global`` with odd
  integer scale factors; Mitiq itself is not used because its newest release (1.1.0) pins
  cirq-core < 1.7 and this project runs cirq-core 1.7 (cirq-ionq 1.7 needs it); see
  docs/CIRCUITS.md. The tests check our folding against explicitly folded cirq circuits, the
  extrapolation against exact fits, and both against Mitiq where it is importable.
* Readout: per-qubit confusion matrices estimated from two calibration circuits (all |0>,
  and X on every qubit), inverted and applied qubit by qubit to the measured probabilities.

``Mitigation`` is an option of the density-matrix backend (``mitigation=``), so evaluation,
training and ``qstore.vqe.minimize(..., backend=...)`` all get mitigated expectations.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cirq
import numpy as np

from qstore.errors import error

from .noise import apply_readout
from .observables import PauliSumLike, ZObservables
from .spec import CircuitSpec

if TYPE_CHECKING:
    from .density_matrix import DensityMatrixBackend

FITS = ("richardson", "linear")


def extrapolate(factors: Sequence[float], values: np.ndarray, fit: str = "richardson") -> np.ndarray:
    """Zero-noise value from ``values`` (F, ...) measured at noise scales ``factors`` (F,)."""
    c = np.asarray(factors, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if fit == "richardson":
        # Lagrange weights of the interpolating polynomial at 0
        w = np.array([np.prod([c[j] / (c[j] - c[i]) for j in range(len(c)) if j != i]) for i in range(len(c))])
    elif fit == "linear":
        A = np.stack([np.ones_like(c), c], axis=1)
        w = np.linalg.pinv(A)[0]
    else:
        raise error("invalid_parameters", f"unknown extrapolation {fit!r}; choose one of {FITS}")
    return np.tensordot(w, v, axes=(0, 0))


@dataclass(frozen=True)
class Mitigation:
    """ZNE (``zne``: ``richardson`` | ``linear`` | None) at ``scale_factors``, and readout correction."""

    zne: str | None = "richardson"
    scale_factors: tuple[int, ...] = (1, 3, 5)
    readout: bool = True

    def __post_init__(self) -> None:
        if self.zne is not None and self.zne not in FITS:
            raise error("invalid_parameters", f"unknown extrapolation {self.zne!r}; choose one of {FITS}")
        factors = tuple(self.scale_factors)
        if len(factors) < 2 or len(set(factors)) != len(factors) or \
                any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1 or c % 2 == 0
                    for c in factors):
            raise error("invalid_parameters", f"scale_factors must be 2 or more distinct odd positive integers, "
                                              f"got {self.scale_factors!r}")

    @property
    def factors(self) -> tuple[int, ...]:
        return tuple(int(c) for c in self.scale_factors) if self.zne else (1,)

    def execute(self, backend: DensityMatrixBackend, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray,
                observables: ZObservables) -> np.ndarray:
        unfold = calibrate_readout(backend, spec.n_qubits) if self.readout else None
        values = []
        for c in self.factors:
            probs = backend.sampled(backend.probabilities(spec, angles, theta, fold=c))
            if unfold is not None:
                probs = apply_readout(probs, unfold)
            values.append(observables.from_probabilities(probs))
        return extrapolate(self.factors, np.stack(values), self.zne) if self.zne else values[0]

    def energy(self, backend: DensityMatrixBackend, circuit: cirq.AbstractCircuit, hamiltonian: PauliSumLike,
               resolver: cirq.ParamResolverOrSimilarType, qubits: Sequence[cirq.Qid]) -> float:
        unfold = calibrate_readout(backend, len(qubits)) if self.readout else None
        values = [backend.pauli_expectation(backend.density_matrix(circuit, resolver, qubits, fold=c), hamiltonian,
                                            qubits, unfold) for c in self.factors]
        return float(extrapolate(self.factors, np.array(values), self.zne)) if self.zne else values[0]


def calibrate_readout(backend: DensityMatrixBackend, n_qubits: int) -> list[np.ndarray]:
    """Inverse per-qubit confusion matrices measured on ``backend`` (its shots, if any), once per backend
    and qubit count, as a device is calibrated once per session, not per circuit."""
    if n_qubits not in backend.readout_calibration:
        backend.readout_calibration[n_qubits] = _calibrate(backend, n_qubits)
    return backend.readout_calibration[n_qubits]


def _calibrate(backend: DensityMatrixBackend, n_qubits: int) -> list[np.ndarray]:
    qubits = cirq.LineQubit.range(n_qubits)
    columns = []
    for prepare in (cirq.Circuit(cirq.I.on_each(qubits)), cirq.Circuit(cirq.X.on_each(qubits))):
        rho = backend.density_matrix(prepare, None, qubits)
        probs = apply_readout(np.clip(np.real(np.diag(rho)), 0.0, None)[None], backend.readout)
        probs = backend.sampled(probs)[0].reshape((2,) * n_qubits)
        columns.append([probs.sum(axis=tuple(a for a in range(n_qubits) if a != q)) for q in range(n_qubits)])
    out = []
    for q in range(n_qubits):
        m = np.stack([columns[0][q], columns[1][q]], axis=1)           # M[measured, prepared]
        if abs(np.linalg.det(m)) < 1e-9:
            raise error("backend_error", f"readout calibration of qubit {q} is singular: {m.tolist()}")
        out.append(np.linalg.inv(m))
    return out


def mitigation_from(value: Any) -> Mitigation | None:
    """None, a ``Mitigation`` or its fields as a dict."""
    if value is None or isinstance(value, Mitigation):
        return value
    if isinstance(value, Mapping):
        try:
            return Mitigation(**value)
        except TypeError as exc:
            raise error("invalid_parameters", f"bad mitigation options {sorted(value)}: {exc}") from None
    raise error("invalid_parameters", f"mitigation must be a Mitigation or a dict, got {type(value).__name__}")
