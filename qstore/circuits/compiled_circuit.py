"""A NumPy state-vector simulator of arbitrary cirq circuits, with adjoint gradients of Pauli sums.

cirq only describes the circuit here (``cirq.unitary``, eigen-components); the simulation is
NumPy einsum over a (batch, 2, ..., 2) tensor. This is the general path for user circuits
(VQE-style ``qstore.vqe.minimize``): any gate
with a unitary is applied through ``cirq.unitary``; gates with sympy
parameters must be, or decompose into, ``cirq.EigenGate``s with a symbolic
exponent (Rx/Ry/Rz, XPow/YPow/ZPow, CZPow, XX/YY/ZZPow, PhasedXPow, FSim, ...),
whose derivative is exact: for U = sum_j exp(i pi e (l_j + s)) P_j,
dU/de = sum_j i pi (l_j + s) exp(i pi e (l_j + s)) P_j.
"""
from __future__ import annotations

import logging
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cirq
import numpy as np
import sympy

from qstore.errors import error

from .observables import PauliSumLike, PauliTerms, pauli_terms

log = logging.getLogger(__name__)

MAX_QUBITS = 24
_LETTERS = string.ascii_letters


@dataclass
class _Step:
    axes: tuple[int, ...]
    unitary: Callable[[np.ndarray], np.ndarray]               # values (B, K) -> (Bm, d, d)
    derivatives: list[tuple[int, Callable[[np.ndarray], np.ndarray]]]


def _constant(u: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    u = u[None]
    return lambda values: u


def _numeric(expr: sympy.Expr, symbols: list[sympy.Symbol]) -> Callable[[np.ndarray], np.ndarray]:
    """expr(values (B, K)) -> (B,) float."""
    fn = sympy.lambdify(symbols, expr, "numpy")
    return lambda values: np.broadcast_to(np.asarray(fn(*values.T), dtype=np.float64), values.shape[:1])


class CompiledCircuit:
    """A cirq circuit prepared for repeated batched simulation and differentiation.

    Args:
        circuit: any unitary cirq circuit (no measurements).
        symbols: the sympy symbols (or names) that ``values`` columns bind.
        qubits: qubit order (qubit 0 most significant); default sorted.
    """

    def __init__(self, circuit: cirq.AbstractCircuit, symbols: Sequence[sympy.Symbol | str] = (),
                 qubits: Sequence[cirq.Qid] | None = None):
        self.qubits = list(qubits) if qubits is not None else sorted(circuit.all_qubits())
        self.n_qubits = len(self.qubits)
        if self.n_qubits > MAX_QUBITS:
            raise error("too_many_qubits", f"{self.n_qubits} qubits is over this simulator's limit of {MAX_QUBITS}")
        missing = circuit.all_qubits() - set(self.qubits)
        if missing:
            raise error("invalid_parameters", f"circuit acts on qubits not in the order: {sorted(missing)}")
        self.symbols = [sympy.Symbol(s) if isinstance(s, str) else s for s in symbols]
        index = {q: i for i, q in enumerate(self.qubits)}
        self.steps: list[_Step] = []
        for op in circuit.all_operations():
            self._add(op, index)

    def _add(self, op: cirq.Operation, index: dict[cirq.Qid, int]) -> None:
        if cirq.is_measurement(op):
            raise error("invalid_parameters", "remove measurements: this path computes exact expectations")
        axes = tuple(index[q] for q in op.qubits)
        if not cirq.is_parameterized(op):
            u = cirq.unitary(op, default=None)
            if u is None:
                raise error("invalid_parameters", f"operation {op} has no unitary")
            self.steps.append(_Step(axes, _constant(u), []))
            return
        gate = op.gate
        if isinstance(gate, cirq.EigenGate) and not cirq.is_parameterized(gate.global_shift):
            self.steps.append(self._eigen_step(gate, axes))
            return
        parts = cirq.decompose_once(op, default=None)
        if parts is None:
            raise error("invalid_parameters", f"cannot differentiate {op}: its parameters are not EigenGate exponents "
                                              "and it does not decompose")
        log.debug("differentiating %s through its decomposition %s", op, parts)
        for part in parts:
            self._add(part, index)

    def _eigen_step(self, gate: cirq.EigenGate, axes: tuple[int, ...]) -> _Step:
        exponent = sympy.sympify(gate.exponent)
        unknown = exponent.free_symbols - set(self.symbols)
        if unknown:
            raise error("invalid_parameters", f"unbound symbols {sorted(map(str, unknown))} in {gate}")
        components = [(float(h) + gate.global_shift, np.asarray(p, dtype=np.complex128))
                      for h, p in gate._eigen_components()]
        phases = np.array([c[0] for c in components])
        projectors = np.stack([c[1] for c in components])           # (J, d, d)
        e_of = _numeric(exponent, self.symbols)

        def unitary(values: np.ndarray) -> np.ndarray:
            w = np.exp(1j * np.pi * e_of(values)[:, None] * phases[None, :])
            return np.einsum("bj,jxy->bxy", w, projectors)

        derivatives = []
        for k, sym in enumerate(self.symbols):
            if sym not in exponent.free_symbols:
                continue
            de_of = _numeric(sympy.diff(exponent, sym), self.symbols)

            def derivative(values: np.ndarray, de_of=de_of) -> np.ndarray:
                e = e_of(values)[:, None]
                w = 1j * np.pi * phases[None, :] * np.exp(1j * np.pi * e * phases[None, :])
                return de_of(values)[:, None, None] * np.einsum("bj,jxy->bxy", w, projectors)

            derivatives.append((k, derivative))
        return _Step(axes, unitary, derivatives)

    # -- simulation -------------------------------------------------------------------
    def _values(self, values: np.ndarray | Sequence[float] | None) -> tuple[np.ndarray, bool]:
        v = np.zeros(0) if values is None else np.asarray(values, dtype=np.float64)
        single = v.ndim == 1
        v = v[None, :] if single else v
        if v.ndim != 2 or v.shape[1] != len(self.symbols):
            raise error("invalid_parameters",
                        f"values must have shape ({len(self.symbols)},) or (batch, {len(self.symbols)}), "
                        f"got {np.shape(values)}")
        if not np.all(np.isfinite(v)):
            raise error("invalid_parameters", "values contain NaN or Inf")
        return v, single

    def _initial(self, batch: int, initial_state: np.ndarray | None) -> np.ndarray:
        shape = (batch,) + (2,) * self.n_qubits
        if initial_state is None:
            psi = np.zeros(shape, dtype=np.complex128)
            psi.reshape(batch, -1)[:, 0] = 1.0
            return psi
        init = np.asarray(initial_state, dtype=np.complex128)
        return np.broadcast_to(init.reshape((-1,) + (2,) * self.n_qubits), shape).copy()

    def _forward(self, v: np.ndarray, initial_state: np.ndarray | None) -> np.ndarray:
        psi = self._initial(v.shape[0], initial_state)
        for step in self.steps:
            psi = apply_matrix(psi, step.unitary(v), step.axes)
        return psi

    def states(self, values: np.ndarray | Sequence[float] | None = None,
               initial_state: np.ndarray | None = None) -> np.ndarray:
        """Final states: (2^n,) for one value row, (B, 2^n) for a batch."""
        v, single = self._values(values)
        psi = self._forward(v, initial_state).reshape(v.shape[0], -1)
        return psi[0] if single else psi

    def expectation(self, values: np.ndarray | Sequence[float] | None, hamiltonian: PauliSumLike | PauliTerms
                    ) -> float | np.ndarray:
        """<H> per value row."""
        v, single = self._values(values)
        h = self._terms(hamiltonian)
        psi = self._forward(v, None).reshape(v.shape[0], -1)
        e = np.einsum("bi,bi->b", psi.conj(), h.apply(psi)).real
        return float(e[0]) if single else e

    def value_and_grad(self, values: np.ndarray | Sequence[float], hamiltonian: PauliSumLike | PauliTerms
                       ) -> tuple[float | np.ndarray, np.ndarray]:
        """(<H>, d<H>/d values) by the adjoint method: one forward and one backward pass."""
        v, single = self._values(values)
        energy, grad = self.vjp(v, [hamiltonian], np.ones((v.shape[0], 1)))
        return (float(energy[0, 0]), grad[0]) if single else (energy[:, 0], grad)

    def vjp(self, values: np.ndarray, observables: Sequence[PauliSumLike | PauliTerms], cotangent: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
        """Expectations (B, K) of K observables and the vector-Jacobian product
        sum_k cotangent[b, k] d<O_k>_b / d values[b] (B, n_symbols), by one adjoint pass:
        the cotangent-weighted observable is applied once and goes back through the circuit."""
        v, _ = self._values(values)
        terms = [self._terms(o) for o in observables]
        B = v.shape[0]
        g = np.asarray(cotangent, dtype=np.float64).reshape(B, len(terms))
        psi = self._forward(v, None)
        flat = psi.reshape(B, -1)
        applied = [h.apply(flat) for h in terms]
        expectations = np.stack([np.einsum("bi,bi->b", flat.conj(), a).real for a in applied], axis=1)
        lam = sum((g[:, k, None] * a for k, a in enumerate(applied)), np.zeros_like(flat)).reshape(psi.shape)
        grad = np.zeros((B, len(self.symbols)))
        for step in reversed(self.steps):
            u_dag = np.conj(np.swapaxes(step.unitary(v), -1, -2))
            psi = apply_matrix(psi, u_dag, step.axes)
            for k, derivative in step.derivatives:
                d_psi = apply_matrix(psi, derivative(v), step.axes)
                grad[:, k] += 2.0 * np.einsum("bi,bi->b", lam.reshape(B, -1).conj(), d_psi.reshape(B, -1)).real
            lam = apply_matrix(lam, u_dag, step.axes)
        return expectations, grad

    def _terms(self, hamiltonian: PauliSumLike | PauliTerms) -> PauliTerms:
        if isinstance(hamiltonian, PauliTerms):
            return hamiltonian
        return pauli_terms(hamiltonian, self.n_qubits, self.qubits)


def apply_matrix(psi: np.ndarray, mats: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Apply (Bm, 2^k, 2^k) matrices to qubits ``axes`` of states (B, 2, ..., 2); Bm is 1 or B."""
    k, n = len(axes), psi.ndim - 1
    m = mats.reshape((mats.shape[0],) + (2,) * (2 * k))
    state = _LETTERS[:n]
    out = list(state)
    new = _LETTERS[n:n + k]
    for letter, axis in zip(new, axes):
        out[axis] = letter
    ins = "".join(state[a] for a in axes)
    if mats.shape[0] == 1:
        return np.einsum(f"{new}{ins},Z{state}->Z{''.join(out)}", m[0], psi)
    return np.einsum(f"Z{new}{ins},Z{state}->Z{''.join(out)}", m, psi)


def simulate(circuit: cirq.AbstractCircuit, resolver: cirq.ParamResolverOrSimilarType = None,
             qubits: Sequence[cirq.Qid] | None = None, initial_state: np.ndarray | None = None) -> np.ndarray:
    """Final state (2^n,) of a circuit after resolving its parameters."""
    resolved = cirq.resolve_parameters(circuit, cirq.ParamResolver(resolver))
    if cirq.is_parameterized(resolved):
        raise error("invalid_parameters", "circuit has unresolved parameters")
    return CompiledCircuit(resolved, (), qubits).states(None, initial_state)


def pauli_sum_value_and_grad(circuit: cirq.AbstractCircuit, symbols: Sequence[sympy.Symbol | str],
                             values: np.ndarray | Sequence[float], hamiltonian: PauliSumLike | PauliTerms,
                             qubits: Sequence[cirq.Qid] | None = None) -> tuple[float | np.ndarray, np.ndarray]:
    """<H> and its gradient wrt ``symbols`` for a parameterised circuit (adjoint method)."""
    return CompiledCircuit(circuit, symbols, qubits).value_and_grad(values, hamiltonian)
