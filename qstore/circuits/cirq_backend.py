"""cirq simulators as a backend: the reference for correctness, and noisy simulation."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import cirq
import numpy as np

from qstore.errors import error

from .backend import Backend, check_execute_args, check_shots
from .observables import ZObservables, counts_from_indices
from .spec import CircuitSpec

MEASUREMENT_KEY = "m"
NOISE_CHANNELS = ("depolarizing", "amplitude_damping")


class ChannelsAfterEachMoment(cirq.NoiseModel):
    """Applies the given single-qubit channels to every qubit after every moment."""

    def __init__(self, channels: Sequence[cirq.Gate]):
        self.channels = list(channels)

    def noisy_moment(self, moment: cirq.Moment, system_qubits: Sequence[cirq.Qid]) -> cirq.OP_TREE:
        if cirq.is_measurement(moment):
            return [moment]
        return [moment] + [cirq.Moment(ch.on_each(system_qubits)) for ch in self.channels]


def noise_model(noise: Mapping[str, float] | cirq.NoiseModel | None) -> cirq.NoiseModel | None:
    """``{"depolarizing": p, "amplitude_damping": gamma}`` (either or both) -> a cirq noise model.

    Channels act on every qubit after every moment, depolarising first.
    """
    if noise is None or isinstance(noise, cirq.NoiseModel):
        return noise
    unknown = set(noise) - set(NOISE_CHANNELS)
    if unknown:
        raise error("invalid_parameters", f"unknown noise channels {sorted(unknown)}; use {NOISE_CHANNELS}")
    channels: list[cirq.Gate] = []
    for name, make in (("depolarizing", cirq.depolarize), ("amplitude_damping", cirq.amplitude_damp)):
        if name in noise:
            p = float(noise[name])
            if not 0.0 <= p <= 1.0:
                raise error("invalid_parameters", f"{name} probability must be in [0, 1], got {p}")
            if p > 0:
                channels.append(make(p))
    return ChannelsAfterEachMoment(channels) if channels else None


class CirqBackend(Backend):
    """``cirq.Simulator`` (pure states) or ``cirq.DensityMatrixSimulator`` (mixed, noisy).

    Args:
        density_matrix: use the density-matrix simulator (needed for noise).
        noise: ``{"depolarizing": p, "amplitude_damping": gamma}`` or a ``cirq.NoiseModel``.
        shots: None for exact expectations from the final state, else estimates
            from this many measured repetitions per row.
        seed: seeds cirq's sampler.
    """

    def __init__(self, density_matrix: bool = False, noise: Mapping[str, float] | cirq.NoiseModel | None = None,
                 shots: int | None = None, seed: int | None = None):
        self.noise = noise_model(noise)
        if self.noise is not None and not density_matrix:
            raise error("invalid_parameters",
                        "noise needs the density-matrix simulator: use backend 'cirq-density-matrix'")
        self.density_matrix = density_matrix
        self.name = "cirq-density-matrix" if density_matrix else "cirq"
        self.shots = None if shots is None else check_shots(shots)
        self.simulator = self._make_simulator(seed)

    def _make_simulator(self, seed: int | None) -> cirq.SimulatesSamples:
        # complex128: cirq's complex64 default is only good to ~1e-7, too coarse for a reference.
        if self.density_matrix:
            return cirq.DensityMatrixSimulator(dtype=np.complex128, noise=self.noise, seed=seed)
        return cirq.Simulator(dtype=np.complex128, seed=seed)

    def _probabilities(self, circuit: cirq.Circuit, resolver: cirq.ParamResolver, qubits: list[cirq.Qid]
                       ) -> np.ndarray:
        result = self.simulator.simulate(circuit, param_resolver=resolver, qubit_order=qubits)
        if self.density_matrix:
            probs = np.real(np.diag(result.final_density_matrix)).astype(np.float64)
        else:
            probs = np.abs(result.final_state_vector.astype(np.complex128)) ** 2
        return probs / probs.sum()

    def _shots(self, circuit: cirq.Circuit, resolver: cirq.ParamResolver, qubits: list[cirq.Qid], shots: int,
               simulator: cirq.SimulatesSamples | None = None) -> np.ndarray:
        """Basis-state index of each shot."""
        measured = circuit + cirq.measure(*qubits, key=MEASUREMENT_KEY)
        result = (simulator or self.simulator).run(measured, param_resolver=resolver, repetitions=shots)
        bits = result.measurements[MEASUREMENT_KEY]
        weights = 1 << np.arange(len(qubits) - 1, -1, -1)
        return bits.astype(np.int64) @ weights

    def execute(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray,
                observables: ZObservables) -> np.ndarray:
        angles, theta = check_execute_args(spec, angles, theta)
        circuit, _, _ = spec.to_cirq()
        out = np.empty((angles.shape[0], len(observables)))
        for b in range(angles.shape[0]):
            resolver = spec.resolver(angles[b], theta if theta.ndim == 1 else theta[b])
            if self.shots is None:
                probs = self._probabilities(circuit, resolver, spec.qubits)
            else:
                hist = np.bincount(self._shots(circuit, resolver, spec.qubits, self.shots), minlength=spec.dim)
                probs = hist / self.shots
            out[b] = observables.from_probabilities(probs[None, :])[0]
        return out

    def counts(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, shots: int,
               seed: int | None = None) -> list[dict[str, int]]:
        angles, theta = check_execute_args(spec, angles, theta)
        shots = check_shots(shots)
        simulator = self._make_simulator(seed) if seed is not None else self.simulator
        circuit, _, _ = spec.to_cirq()
        out = []
        for b in range(angles.shape[0]):
            resolver = spec.resolver(angles[b], theta if theta.ndim == 1 else theta[b])
            out.append(counts_from_indices(self._shots(circuit, resolver, spec.qubits, shots, simulator),
                                           spec.n_qubits))
        return out
