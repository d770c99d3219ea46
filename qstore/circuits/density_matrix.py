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
from .density_matrix_kernels import apply_one_qubit, apply_superoperator, sparse_superoperator
from .mitigation import Mitigation, mitigation_from
from .noise import NoiseLike, NoiseModel, apply_readout, noise_model
from .observables import PauliSumLike, ZObservables, _parity, counts_from_indices, pauli_terms
from .spec import CircuitSpec

log = logging.getLogger(__name__)

MAX_QUBITS = 10
_CHUNK_BYTES = 1 << 20


_Noise = list[tuple[tuple[int, ...], np.ndarray]]           # local (row + column) axes, superoperator (1, d, d)


@dataclass
class _Gate:
    """Operations on the same qubits, each followed by its noise, as one superoperator on those
    qubits' row and column axes. Consecutive one-qubit operations on a qubit are fused into one."""

    axes: tuple[int, ...]                                     # the qubits, then the same + n
    parts: list[tuple[list[_Step], _Noise]]                   # unitaries on local qubits 0..k-1, then noise
    constant: bool
    cache: dict[tuple[bool, bool], np.ndarray]

    def applications(self, v: np.ndarray, inverse: bool) -> list[tuple[tuple[int, ...], np.ndarray]]:
        """(axes, superoperator) to apply in turn: all fused, or the gate fused with the noise on all its
        qubits and the noise on fewer qubits apart, whichever costs fewer passes over the state (non-zero
        entries / dimension): a CNOT's superoperator has 16 non-zero entries of 256 and a depolarising
        channel's 28, but with amplitude damping on each qubit their product is dense."""
        fused = [(self.axes, self.superoperator(v, inverse, spanning_only=False))]
        if len(self.axes) == 2:
            return fused
        split = [(self.axes, self.superoperator(v, inverse, spanning_only=True))]
        for _, noise in self.parts:
            split += [(tuple(self.axes[a] for a in local), s) for local, s in noise if len(local) < len(self.axes)]
        return min(fused, split, key=_passes)

    def superoperator(self, v: np.ndarray, inverse: bool, spanning_only: bool = False) -> np.ndarray:
        """(Bm, 4^k, 4^k) for value rows v: the operations (or their inverses, in reverse order), each then
        its noise."""
        if self.constant and (inverse, spanning_only) in self.cache:
            return self.cache[inverse, spanning_only]
        k = len(self.axes) // 2
        parts = [([(st, st.unitary(v)) for st in steps], noise) for steps, noise in self.parts]
        if inverse:
            parts = [([(st, np.conj(np.swapaxes(u, -1, -2))) for st, u in reversed(ops)], noise)
                     for ops, noise in reversed(parts)]
        kept = [(ops, [(axes, s) for axes, s in noise if not spanning_only or len(axes) == 2 * k])
                for ops, noise in parts]
        whole = all(st.axes == tuple(range(k)) for ops, _ in kept for st, _ in ops) and \
            all(axes == tuple(range(2 * k)) for _, noise in kept for axes, _ in noise)
        out = _compose(kept, k) if whole else _run_basis(kept, k)
        if self.constant:
            self.cache[inverse, spanning_only] = out
        return out


_Ops = list[tuple[list[tuple[_Step, np.ndarray]], _Noise]]


def _compose(parts: _Ops, k: int) -> np.ndarray:
    """Superoperator of steps and noise that all act on every one of the k qubits: products of
    U (x) conj(U) (batched) and the noise matrices. The common case, and cheap."""
    d2 = 4 ** k
    out = np.eye(d2, dtype=np.complex128)[None]
    for ops, noise in parts:
        for _, u in ops:
            s = np.einsum("bij,bkl->bikjl", u, np.conj(u)).reshape(u.shape[0], d2, d2)
            out = s @ out
        for _, s in noise:
            out = s @ out
    return out


def _run_basis(parts: _Ops, k: int) -> np.ndarray:
    """Superoperator of any steps and noise on subsets of the k qubits: run the 4^k basis matrices
    |r><c| through them (so decompositions and partial noise need no embedding algebra)."""
    d2 = 4 ** k
    rows = max([u.shape[0] for ops, _ in parts for _, u in ops], default=1)
    basis = np.tile(np.eye(d2, dtype=np.complex128), (rows, 1)).reshape((rows * d2,) + (2,) * (2 * k))
    for ops, noise in parts:
        for step, u in ops:
            u = np.repeat(u, d2, axis=0) if u.shape[0] > 1 else u
            basis = apply_matrix(basis, u, step.axes)
            basis = apply_matrix(basis, np.conj(u), tuple(a + k for a in step.axes))
        for axes, s in noise:
            basis = apply_matrix(basis, s, axes)
    return np.swapaxes(basis.reshape(rows, d2, d2), 1, 2)


def _passes(applications: list[tuple[tuple[int, ...], np.ndarray]]) -> float:
    return float(sum(np.count_nonzero(np.any(s != 0, axis=0)) / s.shape[-1] for _, s in applications))


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
        self.gates: list[_Gate] = []
        n = self.n_qubits
        pending: dict[int, _Gate] = {}                       # one-qubit gates not yet followed by another gate

        def flush(qubit: int) -> None:
            if qubit in pending:
                self.gates.append(pending.pop(qubit))

        for op in circuit.all_operations():
            local = {q: i for i, q in enumerate(op.qubits)}
            steps = CompiledCircuit(cirq.Circuit(op), self.symbols, list(op.qubits)).steps
            after = noise.after(op) if noise is not None else []
            part = (steps, [_superoperator(o, local, len(op.qubits)) for o in after])
            axes = tuple(index[q] for q in op.qubits)
            if len(axes) == 1 and axes[0] in pending:
                gate = pending[axes[0]]
                gate.parts.append(part)
                gate.constant = gate.constant and not cirq.is_parameterized(op)
                continue
            for a in axes:
                flush(a)
            gate = _Gate(axes + tuple(a + n for a in axes), [part], not cirq.is_parameterized(op), {})
            if len(axes) == 1:
                pending[axes[0]] = gate
            else:
                self.gates.append(gate)
        for a in list(pending):
            flush(a)

    def run(self, values: np.ndarray, fold: int = 1) -> np.ndarray:
        """Final density matrices (B, 2^n, 2^n) for value rows (B, K)."""
        B, n = values.shape[0], self.n_qubits
        dim = 1 << n
        forward = [a for g in self.gates for a in g.applications(values, False)]
        sequence = list(forward)
        if fold > 1:
            backward = [a for g in reversed(self.gates) for a in g.applications(values, True)]
            sequence += (backward + forward) * ((fold - 1) // 2)
        # one qubit (a row and a column bit): the dense unrolled kernel; more: the sparse one
        kernels = [(2 * n - 1 - axes[0], 2 * n - 1 - axes[1], np.ascontiguousarray(s)) if len(axes) == 2
                   else sparse_superoperator(s, axes, 2 * n) for axes, s in sequence]
        # chunks of a few samples: a cache-sized state stays in cache across the gates
        chunk = max(1, _CHUNK_BYTES // (16 * dim * dim))
        out = np.zeros((B, dim * dim), dtype=np.complex128)
        out[:, 0] = 1.0
        for b0 in range(0, B, chunk):
            rho = out[b0:b0 + chunk]
            for args in kernels:
                per_row = args[-1] if args[-1].shape[0] == 1 else args[-1][b0:b0 + chunk]
                if len(args) == 3:
                    apply_one_qubit(rho, args[0], args[1], per_row)
                else:
                    apply_superoperator(rho, *args[:-1], per_row)
        return out.reshape(B, dim, dim)


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
        #: inverse readout confusion matrices per qubit count, measured on first use (``mitigation``)
        self.readout_calibration: dict[int, list[np.ndarray]] = {}

    def with_shots(self, shots: int | None) -> Backend:
        clone = super().with_shots(shots)
        assert isinstance(clone, DensityMatrixBackend)
        clone.readout_calibration = {}                   # calibrate again, with the new shots
        return clone

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
