"""A batched NumPy density-matrix simulator with gate noise, readout error and unitary folding.

A batch of density matrices is one complex array (B, 2, ..., 2) with 2n qubit axes (rows, then
columns). A gate U acts as U on the row axes and conj(U) on the column axes; a channel acts as
its superoperator sum_k K (x) conj(K) on the (row, column) axes of its qubits, one einsum each.
Gates come from ``CompiledCircuit`` (any cirq gate, symbolic EigenGate exponents bound per row),
so the spec circuits and arbitrary cirq circuits share one path. The noise follows each
operation as ``NoiseModel.after`` says, exactly what ``cirq.DensityMatrixSimulator`` does with
``noise.to_cirq()``; the tests check the two agree to 1e-6.

``fold=c`` (odd) runs U (U^dagger U)^((c-1)/2) with the noise after every gate, inverses
included: the unitary folding of zero-noise extrapolation (``mitigation``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cirq
import numpy as np
import sympy

from qstore.errors import error

from .backend import Backend, check_execute_args, check_shots
from .compiled_circuit import CompiledCircuit, _Step, apply_matrix
from .mitigation import Mitigation, mitigation_from
from .noise import NoiseLike, NoiseModel, apply_readout, noise_model
from .observables import PauliSumLike, ZObservables, _parity, counts_from_indices, pauli_terms
from .spec import CircuitSpec

log = logging.getLogger(__name__)

MAX_QUBITS = 10
_CHUNK_BYTES = 1 << 25


@dataclass
class _Gate:
    steps: list[_Step]
    noise: list[tuple[tuple[int, ...], np.ndarray]]           # (row + column axes, superoperator (1, d, d))


def _superoperator(op: cirq.Operation, index: dict[cirq.Qid, int], n: int) -> tuple[tuple[int, ...], np.ndarray]:
    axes = tuple(index[q] for q in op.qubits)
    s = sum(np.kron(k, k.conj()) for k in cirq.kraus(op))
    return axes + tuple(a + n for a in axes), np.asarray(s, dtype=np.complex128)[None]


class NoisyProgram:
    """A cirq circuit compiled for batched noisy density-matrix simulation."""

    def __init__(self, circuit: cirq.AbstractCircuit, symbols: Sequence[sympy.Symbol], qubits: Sequence[cirq.Qid],
                 noise: NoiseModel | None):
        self.qubits = list(qubits)
        self.n_qubits = len(self.qubits)
        if self.n_qubits > MAX_QUBITS:
            raise error("too_many_qubits", f"{self.n_qubits} qubits is over the density-matrix limit of {MAX_QUBITS}")
        self.symbols = list(symbols)
        index = {q: i for i, q in enumerate(self.qubits)}
        self.gates = []
        for op in circuit.all_operations():
            steps = CompiledCircuit(cirq.Circuit(op), self.symbols, self.qubits).steps
            after = noise.after(op) if noise is not None else []
            self.gates.append(_Gate(steps, [_superoperator(o, index, self.n_qubits) for o in after]))

    def run(self, values: np.ndarray, fold: int = 1) -> np.ndarray:
        """Final density matrices (B, 2^n, 2^n) for value rows (B, K)."""
        B, n = values.shape[0], self.n_qubits
        dim = 1 << n
        chunk = max(1, _CHUNK_BYTES // (16 * dim * dim))
        out = np.empty((B, dim, dim), dtype=np.complex128)
        for b0 in range(0, B, chunk):
            out[b0:b0 + chunk] = self._run(values[b0:b0 + chunk], fold).reshape(-1, dim, dim)
        return out

    def _run(self, v: np.ndarray, fold: int) -> np.ndarray:
        n = self.n_qubits
        rho = np.zeros((v.shape[0],) + (2,) * (2 * n), dtype=np.complex128)
        rho.reshape(v.shape[0], -1)[:, 0] = 1.0
        unitaries = [[step.unitary(v) for step in gate.steps] for gate in self.gates]
        forward = [(g, us) for g, us in zip(self.gates, unitaries)]
        backward = [(g, [np.conj(np.swapaxes(u, -1, -2)) for u in reversed(us)], True)
                    for g, us in reversed(forward)]
        sequence = [(g, us, False) for g, us in forward]
        sequence += (backward + sequence) * ((fold - 1) // 2)
        for gate, mats, inverse in sequence:
            steps = list(reversed(gate.steps)) if inverse else gate.steps
            for step, u in zip(steps, mats):
                rho = apply_matrix(rho, u, step.axes)
                rho = apply_matrix(rho, np.conj(u), tuple(a + n for a in step.axes))
            for axes, s in gate.noise:
                rho = apply_matrix(rho, s, axes)
        return rho


def check_fold(fold: int) -> int:
    if isinstance(fold, bool) or not isinstance(fold, (int, np.integer)) or fold < 1 or fold % 2 == 0:
        raise error("invalid_parameters", f"fold must be an odd positive integer, got {fold!r}")
    return int(fold)


class DensityMatrixBackend(Backend):
    """Noisy circuits as density matrices (batched NumPy), with readout error and folding.

    Args:
        noise: ``"ionq_aria"``, a ``NoiseModel``, a cirq channel (e.g. ``cirq.depolarize(0.01)``,
            after every gate on each of its qubits), a dict of ``NoiseModel`` fields, or None.
        shots: None for exact (noisy) expectations, else estimates from this many shots.
        seed: seeds the shot sampler.
        mitigation: a ``Mitigation`` (or its dict, e.g. ``{"zne": "richardson", "readout": True}``)
            applied to every expectation this backend returns.
    """

    name = "density_matrix"

    def __init__(self, noise: NoiseLike = None, shots: int | None = None, seed: int | None = None,
                 mitigation: Mitigation | dict[str, Any] | None = None):
        self.noise = noise_model(noise)
        self.shots = None if shots is None else check_shots(shots)
        self._rng = np.random.default_rng(seed)
        self._programs: dict[CircuitSpec, NoisyProgram] = {}
        self.mitigation = mitigation_from(mitigation)

    def program(self, spec: CircuitSpec) -> NoisyProgram:
        if spec not in self._programs:
            circuit, theta_symbols, input_symbols = spec.to_cirq()
            self._programs[spec] = NoisyProgram(circuit, [*input_symbols, *theta_symbols], spec.qubits, self.noise)
        return self._programs[spec]

    @property
    def readout(self) -> np.ndarray:
        return self.noise.readout if self.noise is not None else np.eye(2)

    # -- arbitrary cirq circuits ---------------------------------------------------------------
    def density_matrix(self, circuit: cirq.AbstractCircuit, resolver: cirq.ParamResolverOrSimilarType = None,
                       qubits: Sequence[cirq.Qid] | None = None, fold: int = 1) -> np.ndarray:
        """The noisy final state (2^n, 2^n) of a cirq circuit (no measurements), qubit 0 most significant."""
        resolved = cirq.resolve_parameters(circuit, cirq.ParamResolver(resolver))
        if cirq.is_parameterized(resolved):
            raise error("invalid_parameters", "circuit has unresolved parameters")
        if any(cirq.is_measurement(op) for op in resolved.all_operations()):
            raise error("invalid_parameters", "remove measurements: readout error is applied to probabilities")
        order = list(qubits) if qubits is not None else sorted(resolved.all_qubits())
        rho: np.ndarray = NoisyProgram(resolved, [], order, self.noise).run(np.zeros((1, 0)), check_fold(fold))[0]
        return rho

    def pauli_expectation(self, rho: np.ndarray, hamiltonian: PauliSumLike, qubits: Sequence[cirq.Qid],
                          unfold_readout: Sequence[np.ndarray] | None = None) -> float:
        """<H> as measured: each term in its rotated basis, through readout error, then (if given) through
        per-qubit ``unfold_readout`` matrices (readout mitigation)."""
        n = len(qubits)
        terms = pauli_terms(hamiltonian, n, list(qubits))
        r = rho.reshape((1,) + (2,) * (2 * n))
        index = np.arange(1 << n, dtype=np.int64)
        total = 0.0
        for c, x, z in zip(terms.coefficients, terms.x_masks, terms.z_masks):
            t = r
            for q in range(n):
                bit = 1 << (n - 1 - q)
                if x & bit:
                    u = _TO_Z["Y" if z & bit else "X"][None]
                    t = apply_matrix(apply_matrix(t, u, (q,)), u.conj(), (q + n,))
            probs = apply_readout(np.real(np.einsum("ii->i", t.reshape(1 << n, 1 << n)))[None], self.readout)
            if unfold_readout is not None:
                probs = apply_readout(probs, unfold_readout)
            total += float(c) * float(probs[0] @ (1.0 - 2.0 * _parity(index & int(x | z))))
        return total

    def energy(self, circuit: cirq.AbstractCircuit, hamiltonian: PauliSumLike,
               resolver: cirq.ParamResolverOrSimilarType = None, qubits: Sequence[cirq.Qid] | None = None) -> float:
        """<H> of a cirq circuit as this backend measures it (noise, readout error, and mitigation if set)."""
        order = list(qubits) if qubits is not None else sorted(circuit.all_qubits())
        if self.mitigation is not None:
            return self.mitigation.energy(self, circuit, hamiltonian, resolver, order)
        return self.pauli_expectation(self.density_matrix(circuit, resolver, order), hamiltonian, order)

    # -- spec circuits -------------------------------------------------------------------------
    def probabilities(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, fold: int = 1) -> np.ndarray:
        """Measured-outcome probabilities (B, 2^n), readout error included."""
        angles, theta = check_execute_args(spec, angles, theta)
        theta_rows = np.broadcast_to(theta, (angles.shape[0], theta.shape[-1])) if theta.ndim == 1 else theta
        rho = self.program(spec).run(np.concatenate([angles, theta_rows], axis=1), check_fold(fold))
        probs = np.clip(np.real(np.einsum("bii->bi", rho)), 0.0, None)
        probs /= probs.sum(axis=1, keepdims=True)
        return apply_readout(probs, self.readout)

    def sampled(self, probs: np.ndarray) -> np.ndarray:
        if self.shots is None:
            return probs
        return np.stack([self._rng.multinomial(self.shots, p) for p in probs]) / self.shots

    def execute(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray,
                observables: ZObservables) -> np.ndarray:
        if self.mitigation is not None:
            return self.mitigation.execute(self, spec, angles, theta, observables)
        return observables.from_probabilities(self.sampled(self.probabilities(spec, angles, theta)))

    def counts(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, shots: int,
               seed: int | None = None) -> list[dict[str, int]]:
        rng = np.random.default_rng(seed) if seed is not None else self._rng
        probs = self.probabilities(spec, angles, theta)
        out = []
        for p in probs:
            index = np.repeat(np.arange(p.size), rng.multinomial(check_shots(shots), p))
            out.append(counts_from_indices(index, spec.n_qubits))
        return out


_H = np.array([[1.0, 1.0], [1.0, -1.0]], dtype=np.complex128) / np.sqrt(2.0)
#: rotations taking X and Y eigenstates onto Z: H, and H S^dagger
_TO_Z = {"X": _H, "Y": _H @ np.diag([1.0, -1.0j])}
