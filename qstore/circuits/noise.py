"""Noise models: depolarising and amplitude-damping channels after gates, and readout error.

One ``NoiseModel`` drives both our density-matrix simulator and cirq (``to_cirq()``),
which is how the two are checked against each other.

The ``ionq_aria`` preset (sources and arithmetic in docs/CIRCUITS.md): IonQ's published
Aria-1 figures, average gate fidelities 99.97% (1q) and 99.4% (2q), SPAM 99.62%, T1 = 10 s
with 135 us (1q) and 600 us (2q) gates.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import cirq
import numpy as np

from qstore.errors import error


def _depolarizing_from_fidelity(fidelity: float, n_qubits: int) -> float:
    """cirq.depolarize(p, n) with average gate fidelity F: F = 1 - p d / (d + 1), d = 2^n."""
    d = 2 ** n_qubits
    return float((1.0 - fidelity) * (d + 1) / d)


@dataclass(frozen=True)
class NoiseModel:
    """Channels after every gate, on the gate's qubits, then readout error on measurement.

    Args:
        depolarizing_1q: ``cirq.depolarize(p)`` after each one-qubit gate.
        depolarizing_2q: ``cirq.depolarize(p, n_qubits=2)`` after each two-qubit gate.
        damping_1q, damping_2q: ``cirq.amplitude_damp(gamma)`` on each qubit of a one-/two-qubit gate.
        readout_01: P(read 1 | state 0); readout_10: P(read 0 | state 1).
        channel: any cirq channel (a gate with Kraus operators) put after every gate, on each of the
            gate's qubits if it is a one-qubit channel, else on the gate's qubits.
    """

    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    damping_1q: float = 0.0
    damping_2q: float = 0.0
    readout_01: float = 0.0
    readout_10: float = 0.0
    channel: cirq.Gate | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "channel" and not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise error("invalid_parameters", f"noise {f.name} must be a probability in [0, 1], got {value!r}")
        if self.readout_01 + self.readout_10 >= 1.0:
            raise error("invalid_parameters", "readout errors must sum to less than 1")
        if self.channel is not None and not cirq.has_kraus(self.channel):
            raise error("invalid_parameters", f"noise channel {self.channel!r} has no Kraus operators")

    def after(self, op: cirq.Operation) -> list[cirq.Operation]:
        """The noise operations that follow ``op``."""
        qubits = op.qubits
        out: list[cirq.Operation] = []
        p, gamma = ((self.depolarizing_1q, self.damping_1q) if len(qubits) == 1 else
                    (self.depolarizing_2q, self.damping_2q) if len(qubits) == 2 else (0.0, 0.0))
        if p > 0:
            out.append(cirq.depolarize(p, n_qubits=len(qubits)).on(*qubits))
        if gamma > 0:
            out.extend(cirq.amplitude_damp(gamma).on(q) for q in qubits)
        if self.channel is not None:
            k = cirq.num_qubits(self.channel)
            if k == 1:
                out.extend(self.channel.on(q) for q in qubits)
            elif k == len(qubits):
                out.append(self.channel.on(*qubits))
        return out

    @property
    def readout(self) -> np.ndarray:
        """Confusion matrix M[measured, true] of one qubit."""
        a, b = self.readout_01, self.readout_10
        return np.array([[1.0 - a, b], [a, 1.0 - b]])

    def to_cirq(self) -> cirq.NoiseModel:
        """The same gate noise for ``cirq.DensityMatrixSimulator`` (readout error is applied to probabilities)."""
        return _CirqNoise(self)


class _CirqNoise(cirq.NoiseModel):
    def __init__(self, model: NoiseModel):
        self.model = model

    def noisy_operation(self, operation: cirq.Operation) -> cirq.OP_TREE:
        if cirq.is_measurement(operation):
            return operation
        return [operation, *self.model.after(operation)]


def _aria() -> NoiseModel:
    t1 = 10.0                                     # seconds: the low end of IonQ's quoted 10-100 s
    return NoiseModel(depolarizing_1q=_depolarizing_from_fidelity(0.9997, 1),
                      depolarizing_2q=_depolarizing_from_fidelity(0.994, 2),
                      damping_1q=1.0 - float(np.exp(-135e-6 / t1)), damping_2q=1.0 - float(np.exp(-600e-6 / t1)),
                      readout_01=1.0 - 0.9962, readout_10=1.0 - 0.9962)


PRESETS: dict[str, NoiseModel] = {"ionq_aria": _aria()}

NoiseLike = NoiseModel | str | cirq.Gate | Mapping[str, Any] | None


def noise_model(noise: NoiseLike) -> NoiseModel | None:
    """A preset name, a ``NoiseModel``, a cirq channel, or a dict of ``NoiseModel`` fields."""
    if noise is None or isinstance(noise, NoiseModel):
        return noise
    if isinstance(noise, str):
        if noise not in PRESETS:
            raise error("invalid_parameters", f"unknown noise preset {noise!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[noise]
    if isinstance(noise, cirq.Gate):
        return NoiseModel(channel=noise)
    if isinstance(noise, Mapping):
        names = {f.name for f in fields(NoiseModel)}
        unknown = set(noise) - names
        if unknown:
            raise error("invalid_parameters", f"unknown noise fields {sorted(unknown)}; use {sorted(names)}")
        return NoiseModel(**noise)
    raise error("invalid_parameters", f"noise must be a preset name, a NoiseModel, a cirq channel or a dict, "
                                      f"got {type(noise).__name__}")


def apply_readout(probs: np.ndarray, confusion: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Apply per-qubit 2x2 matrices (one shared, or one per qubit) to probabilities (B, 2^n)."""
    B, dim = probs.shape
    n = dim.bit_length() - 1
    mats = [confusion] * n if np.ndim(confusion) == 2 else list(confusion)
    p = probs.reshape((B,) + (2,) * n)
    for q, m in enumerate(mats):
        p = np.moveaxis(np.tensordot(m, p, axes=([1], [q + 1])), 0, q + 1)
    out: np.ndarray = p.reshape(B, dim)
    return out
