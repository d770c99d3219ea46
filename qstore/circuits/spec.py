"""CircuitSpec: the model circuit every backend and gradient understands."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import cirq
import numpy as np
import sympy

from qstore.errors import error

from .ansatz import ENTANGLEMENTS, entangler_pairs, layer_ops
from .encodings import ENCODINGS, AmplitudeEncoding, AngleEncoding
from .observables import ZObservables, z_observables

# Index arithmetic uses int64 basis indices; backends apply tighter memory limits.
MAX_SPEC_QUBITS = 62


@dataclass(frozen=True)
class CircuitSpec:
    """Encoding, then ``layers`` hardware-efficient layers, then Z readout.

    Args:
        n_qubits: number of qubits.
        layers: ansatz layers (RX·RY·RZ on each qubit, then CNOT entangler).
        encoding: ``"angle"`` (RY(pi*x_f) on qubit f, needs F <= n_qubits) or
            ``"amplitude"`` (padded, normalised features as amplitudes, F <= 2**n).
        entanglement: ``"linear"``, ``"circular"`` or ``"full"`` CNOT pattern.
        reupload: repeat the angle encoding before every layer.
        n_features: F; defaults to n_qubits (angle) or 2**n_qubits (amplitude).
        readout: qubits whose <Z> the model reads; defaults to all qubits.

    Parameters are ordered layer, qubit, axis (RX, RY, RZ); see ``ansatz``.
    """

    n_qubits: int
    layers: int
    encoding: str = "angle"
    entanglement: str = "linear"
    reupload: bool = False
    n_features: int | None = None
    readout: tuple[int, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if not isinstance(self.n_qubits, (int, np.integer)) or not 1 <= self.n_qubits <= MAX_SPEC_QUBITS:
            raise error("invalid_parameters",
                        f"n_qubits must be an integer in [1, {MAX_SPEC_QUBITS}], got {self.n_qubits!r}")
        if not isinstance(self.layers, (int, np.integer)) or self.layers < 1:
            raise error("invalid_parameters", f"layers must be a positive integer, got {self.layers!r}")
        if self.encoding not in ENCODINGS:
            raise error("invalid_parameters", f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")
        if self.entanglement not in ENTANGLEMENTS:
            raise error("invalid_parameters", f"entanglement must be one of {ENTANGLEMENTS}, got {self.entanglement!r}")
        if self.reupload and self.encoding == "amplitude":
            raise error("invalid_parameters", "data re-uploading needs angle encoding: amplitude state preparation "
                                              "only works from |0...0>")
        limit = self.n_qubits if self.encoding == "angle" else 1 << min(self.n_qubits, 62)
        if self.n_features is None:
            object.__setattr__(self, "n_features", limit)
        elif not isinstance(self.n_features, (int, np.integer)) or not 1 <= self.n_features <= limit:
            raise error("invalid_features", f"{self.encoding} encoding on {self.n_qubits} qubits takes 1..{limit} "
                                            f"features, got n_features={self.n_features!r}")
        readout = tuple(range(self.n_qubits)) if self.readout is None else tuple(int(q) for q in self.readout)
        z_observables(readout, self.n_qubits)
        object.__setattr__(self, "readout", readout)

    # -- sizes -------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return 3 * self.n_qubits * self.layers

    @property
    def dim(self) -> int:
        return 1 << self.n_qubits

    @cached_property
    def encoder(self) -> AngleEncoding | AmplitudeEncoding:
        if self.encoding == "angle":
            return AngleEncoding(self.n_features, self.layers if self.reupload else 1)
        return AmplitudeEncoding(self.n_qubits, self.n_features)

    @property
    def n_inputs(self) -> int:
        """Number of input (encoding gate) angles, i.e. columns of ``encode(X)``."""
        return self.encoder.n_angles

    @cached_property
    def observables(self) -> ZObservables:
        """The readout as observables: <Z_q> for each readout qubit."""
        return z_observables([(q,) for q in self.readout], self.n_qubits)

    @cached_property
    def pairs(self) -> list[tuple[int, int]]:
        return entangler_pairs(self.n_qubits, self.entanglement)

    # -- inputs --------------------------------------------------------------
    def check_features(self, X: np.ndarray) -> np.ndarray:
        """Validate features: (B, F) finite floats (a single row may be 1-D)."""
        try:
            X = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise error("invalid_features", f"features must be numeric: {exc}") from None
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != self.n_features or X.shape[0] == 0:
            raise error("invalid_features", f"features must have shape (batch, {self.n_features}), got {X.shape}")
        if not np.isfinite(X).all():
            raise error("invalid_features", "features contain NaN or Inf")
        if self.encoding == "amplitude" and np.any(np.all(X == 0, axis=1)):
            raise error("invalid_features", "amplitude encoding cannot normalise an all-zero feature row")
        return X

    def check_params(self, theta: np.ndarray, batch: int) -> np.ndarray:
        """Validate parameters: (P,) shared by the batch or (batch, P) per sample."""
        try:
            theta = np.asarray(theta, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise error("invalid_parameters", f"parameters must be numeric: {exc}") from None
        ok = theta.shape == (self.n_params,) or theta.shape == (batch, self.n_params)
        if not ok:
            raise error("invalid_parameters",
                        f"parameters must have shape ({self.n_params},) or ({batch}, {self.n_params}), "
                        f"got {theta.shape}")
        if not np.isfinite(theta).all():
            raise error("invalid_parameters", "parameters contain NaN or Inf")
        return theta

    def check_angles(self, angles: np.ndarray) -> np.ndarray:
        angles = np.asarray(angles, dtype=np.float64)
        if angles.ndim != 2 or angles.shape[1] != self.n_inputs:
            raise error("invalid_features",
                        f"input angles must have shape (batch, {self.n_inputs}), got {angles.shape}")
        if not np.isfinite(angles).all():
            raise error("invalid_features", "input angles contain NaN or Inf")
        return angles

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Features (B, F) -> input gate angles (B, n_inputs)."""
        return self.encoder.angles(self.check_features(X))

    def encode_vjp(self, X: np.ndarray, grad_angles: np.ndarray) -> np.ndarray:
        """Chain a gradient wrt input angles (B, n_inputs) back to the features (B, F)."""
        return self.encoder.angles_vjp(self.check_features(X), grad_angles)

    # -- cirq ------------------------------------------------------------------
    @cached_property
    def qubits(self) -> list[cirq.LineQubit]:
        return cirq.LineQubit.range(self.n_qubits)

    @cached_property
    def theta_symbols(self) -> list[sympy.Symbol]:
        return [sympy.Symbol(f"theta_{k}") for k in range(self.n_params)]

    @cached_property
    def input_symbols(self) -> list[sympy.Symbol]:
        return [sympy.Symbol(f"x_{k}") for k in range(self.n_inputs)]

    def to_cirq(self) -> tuple[cirq.Circuit, list[sympy.Symbol], list[sympy.Symbol]]:
        """(circuit, parameter symbols, input-angle symbols), no measurements.

        Resolve it with ``resolver(angles_row, theta_row)`` where the angles come
        from ``encode(X)``: one symbol per encoding gate, so any cirq tool (and
        parameter-shift, gate by gate) can use it unchanged.
        """
        return self._circuit, self.theta_symbols, self.input_symbols

    @cached_property
    def _circuit(self) -> cirq.Circuit:
        qubits, per_layer = self.qubits, 3 * self.n_qubits
        ops: list[cirq.Operation] = []
        x = self.input_symbols
        for layer in range(self.layers):
            if self.encoding == "amplitude" and layer == 0:
                ops += self.encoder.ops(qubits, x)
            elif self.encoding == "angle" and (layer == 0 or self.reupload):
                f = self.n_features
                upload = layer if self.reupload else 0
                ops += self.encoder.ops(qubits, x[upload * f:(upload + 1) * f])
            ops += layer_ops(qubits, self.theta_symbols[layer * per_layer:(layer + 1) * per_layer], self.pairs)
        return cirq.Circuit(ops)

    def resolver(self, angles: np.ndarray, theta: np.ndarray) -> cirq.ParamResolver:
        """Resolver binding one row of input angles and parameters to the circuit's symbols."""
        values = dict(zip(self.input_symbols, map(float, angles)))
        values.update(zip(self.theta_symbols, map(float, theta)))
        return cirq.ParamResolver(values)
