"""The quantum autoencoder (Romero, Olson and Aspuru-Guzik, 2017) for anomaly detection.

The encoder circuit (encoding + ``layers`` of the usual ansatz) is trained to push everything
into ``latent_qubits`` qubits: the cost is the trash qubits' infidelity with |0...0>,
1 - P(trash = 0...0). P(trash = 0) = E[prod_q (1 + Z_q) / 2] = 2^-t sum_S <Z_S> over the
subsets S of the t trash qubits, so it is a sum of Z-product readouts and trains with the same
gradients (adjoint, parameter-shift, shots) as every other model. A sample the circuit cannot
compress (an anomaly) leaves weight on the trash qubits: ``anomaly_score`` = 1 - P(trash = 0).
``calibrate`` puts the threshold at a quantile of the training scores.

Labels in the training data are not used (any labels do; the datasets need one per row).
"""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from qstore.circuits.observables import ZObservables
from qstore.errors import error

from .data import DataSummary
from .models import CircuitMixin, Evaluation, Model


class QuantumAutoencoder(CircuitMixin, Model):
    """Compresses ``n_qubits`` into ``latent_qubits``; the last ``n_qubits - latent_qubits`` are the trash.

    Args:
        n_qubits, layers, encoding, entanglement: the encoder circuit (``CircuitSpec``).
        latent_qubits: qubits kept (1 <= latent_qubits < n_qubits).
        n_features: input width; None takes it from the first training data.
        scaling: as for ``VQC`` (minmax for angle, none for amplitude encoding).
    """

    kind = "quantum_autoencoder"
    metric_name = "fidelity"
    uses_labels = False

    def __init__(self, n_qubits: int, latent_qubits: int, layers: int, encoding: str = "amplitude",
                 entanglement: str = "linear", n_features: int | None = None, scaling: str | None = None,
                 threshold: float | None = None):
        super().__init__(scaling or ("minmax" if encoding == "angle" else "none"))
        if isinstance(latent_qubits, bool) or not isinstance(latent_qubits, (int, np.integer)) or \
                not 1 <= latent_qubits < n_qubits:
            raise error("invalid_argument", f"latent_qubits must be in [1, {n_qubits}), got {latent_qubits!r}")
        self.latent_qubits = int(latent_qubits)
        trash = tuple(range(self.latent_qubits, n_qubits))
        self._init_circuit(n_features, n_qubits=n_qubits, layers=layers, encoding=encoding,
                           entanglement=entanglement, reupload=False, readout=trash)
        subsets = [s for r in range(1, len(trash) + 1) for s in itertools.combinations(trash, r)]
        self.observables = ZObservables(tuple(subsets), n_qubits)
        self.threshold = threshold

    @property
    def trash_qubits(self) -> tuple[int, ...]:
        return tuple(self._circuit_args["readout"])

    @property
    def n_params(self) -> int:  # type: ignore[override]
        return self.spec.n_params

    def config(self) -> dict[str, Any]:
        a = self._circuit_args
        return {"type": self.kind, "n_qubits": a["n_qubits"], "latent_qubits": self.latent_qubits,
                "layers": a["layers"], "encoding": a["encoding"], "entanglement": a["entanglement"],
                "n_features": self.n_features, "scaling": self.scaler.kind}

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-np.pi, np.pi, self.spec.n_params)

    # -- labels are not used -----------------------------------------------------------------
    def fit_targets(self, summary: DataSummary) -> None:
        return None

    def targets(self, y: Any) -> np.ndarray:
        return np.zeros(len(np.asarray(y)))

    def state(self) -> dict[str, Any]:
        return {**super().state(), "threshold": self.threshold}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.threshold = state.get("threshold")

    # -- compute -------------------------------------------------------------------------------
    def _fidelity(self, X: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, float]:
        weight = 2.0 ** -len(self.trash_qubits)
        z = self.runtime.backend.expectations(self.spec, X, theta, self.observables)
        return weight * (1.0 + z.sum(axis=1)), weight

    def evaluate_batch(self, X: np.ndarray, targets: np.ndarray, params: np.ndarray, grad: bool) -> Evaluation:
        fidelity, weight = self._fidelity(X, params)
        loss = float(1.0 - fidelity.mean())
        if not grad:
            return Evaluation(loss, None, fidelity)
        cotangent = np.full((X.shape[0], len(self.observables)), -weight / X.shape[0])
        g, _ = self.runtime.vjp(self.spec, X, params, cotangent, observables=self.observables)
        return Evaluation(loss, g, fidelity)

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(np.mean(outputs))

    def score(self, X: Any, y: Any = None, params: np.ndarray | None = None) -> float:
        """Mean trash fidelity (1 is perfect compression); ``y`` is ignored."""
        return float(1.0 - np.mean(self.anomaly_score(X, params)))

    # -- anomalies ----------------------------------------------------------------------------
    def anomaly_score(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        """1 - P(trash qubits = |0...0>) per row: high for inputs unlike the training data."""
        fidelity, _ = self._fidelity(self.features(X), self._params(params))
        return np.clip(1.0 - fidelity, 0.0, 1.0)

    def calibrate(self, X: Any, quantile: float = 0.95) -> float:
        """Set ``threshold`` to the ``quantile`` of the scores of (normal) training rows ``X``."""
        if not 0.0 < quantile <= 1.0:
            raise error("invalid_argument", f"quantile must be in (0, 1], got {quantile!r}")
        self.threshold = float(np.quantile(self.anomaly_score(X), quantile, method="higher"))
        return self.threshold

    def is_anomaly(self, X: Any) -> np.ndarray:
        if self.threshold is None:
            raise error("invalid_argument", "no threshold yet: call calibrate(X_train) first")
        return self.anomaly_score(X) > self.threshold
