"""A NumPy state-vector simulator of arbitrary cirq circuits, with adjoint gradients of Pauli sums.

cirq only describes the circuit here (``cirq.unitary``, eigen-components). ``states``,
``expectation``, ``forward`` and ``vjp`` run the gates on the compiled state-vector kernels
(``statevector_kernels``: one- and two-qubit gates; wider ones through NumPy einsum), with the
batch innermost; ``_Step.unitary`` / ``apply_matrix`` remain the NumPy form of each gate that
``qstore.vqe`` and the density-matrix backend build on. This is the general path for user circuits
(``CircuitModel``, VQE-style ``qstore.vqe.minimize``): any gate
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
from functools import cached_property

import cirq
import numpy as np
import sympy

from qstore.errors import error

from . import statevector_kernels as kern
from .observables import PauliSumLike, PauliTerms, pauli_terms

log = logging.getLogger(__name__)

MAX_QUBITS = 24
_LETTERS = string.ascii_letters


@dataclass
class _Step:
    axes: tuple[int, ...]
    unitary: Callable[[np.ndarray], np.ndarray]               # values (B, K) -> (Bm, d, d)
    derivatives: list[tuple[int, Callable[[np.ndarray], np.ndarray]]]
    #: a symbolic EigenGate's exponent e and (phases (J,), projectors (J, d, d)): U = sum_j exp(i pi e ph_j) P_j
    exponent: sympy.Expr | None = None
    eigen: tuple[np.ndarray, np.ndarray] | None = None


def _constant(u: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    u = u[None]
    return lambda values: u


def _numeric(expr: sympy.Expr, symbols: list[sympy.Symbol]) -> Callable[[np.ndarray], np.ndarray]:
    """expr(values (B, K)) -> (B,) float."""
    fn = sympy.lambdify(symbols, expr, "numpy")
    return lambda values: np.broadcast_to(np.asarray(fn(*values.T), dtype=np.float64), values.shape[:1])



def _kernel_layout(u: np.ndarray) -> np.ndarray:
    """Complex matrices (..., d, d, B) -> the kernels' real layout (..., 2, d, d, B), contiguous."""
    return np.ascontiguousarray(np.stack([u.real, u.imag], axis=-4))


def _apply(st: np.ndarray, m: np.ndarray, axes: tuple[int, ...], n: int) -> None:
    """In place: matrices ``m`` (2, d, d, Bm) on qubits ``axes`` of states ``st`` (2, 2^n, B)."""
    if len(axes) == 1:
        kern.apply_one_qubit(st, axes[0], n, m)
    elif len(axes) == 2:
        kern.apply_two_qubit(st, axes[0], axes[1], n, m)
    else:                                       # rare wide gates: NumPy
        B = st.shape[2]
        psi = (st[0] + 1j * st[1]).T.reshape((B,) + (2,) * n)
        out = apply_matrix(psi, (m[0] + 1j * m[1]).transpose(2, 0, 1), axes).reshape(B, -1).T
        st[0], st[1] = out.real, out.imag


class _Program:
    """A ``CompiledCircuit`` for the compiled state-vector kernels (``statevector_kernels``).

    States are real arrays (2, 2^n, B) with the batch innermost. Per call, the unitaries of all
    symbolic EigenGates of one size are built by one einsum from a table of their exponents (one
    sympy-lambdified function for the whole circuit), and kept for the backward pass: their
    adjoints undo the forward pass, so the backward pass needs no stored states. The derivative of
    an EigenGate with respect to its exponent is i pi H U with the constant H = sum_j ph_j P_j
    (H commutes with U), so each gate's gradient is one overlap with H applied at its output.
    """

    def __init__(self, compiled: CompiledCircuit):
        self.n = compiled.n_qubits
        self.steps = compiled.steps
        symbols = compiled.symbols
        self.param = [i for i, st in enumerate(self.steps) if st.eigen is not None]
        exprs = [self.steps[i].exponent for i in self.param]
        self._exponents = sympy.lambdify(symbols, exprs, "numpy")
        pairs = [(p, k) for p, e in enumerate(exprs) for k, sym in enumerate(symbols) if sym in e.free_symbols]
        self._slopes = sympy.lambdify(symbols, [sympy.diff(exprs[p], symbols[k]) for p, k in pairs], "numpy")
        self.slope_rows: list[list[tuple[int, int]]] = [[] for _ in self.param]   # per gate: (symbol, row)
        for row, (p, k) in enumerate(pairs):
            self.slope_rows[p].append((k, row))
        # Gates grouped by (size, eigen-components) so one einsum builds each group's unitaries.
        self.groups: dict[tuple[int, int], list[int]] = {}
        for p, i in enumerate(self.param):
            phases, proj = self.steps[i].eigen  # type: ignore[misc]
            self.groups.setdefault((proj.shape[1], len(phases)), []).append(p)
        self.phases = {g: np.stack([self.steps[self.param[p]].eigen[0] for p in ps])  # type: ignore[index]
                       for g, ps in self.groups.items()}
        self.projectors = {g: np.stack([self.steps[self.param[p]].eigen[1] for p in ps])  # type: ignore[index]
                           for g, ps in self.groups.items()}
        self.generators = [_kernel_layout(np.einsum("j,jxy->xy", *self.steps[i].eigen)[..., None])  # type: ignore[misc]
                           for i in self.param]
        self.constant: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, st in enumerate(self.steps):
            if st.eigen is None:
                u = st.unitary(np.zeros((1, len(symbols))))[0]
                self.constant[i] = (_kernel_layout(u[..., None]), _kernel_layout(u.conj().T[..., None]))

    def _table(self, fn: Callable[..., list], v: np.ndarray, rows: int) -> np.ndarray:
        out = np.empty((rows, v.shape[0]))
        if rows:
            for r, e in enumerate(fn(*v.T)):
                out[r] = e                                  # a constant broadcasts over the batch
        return out

    def gates(self, v: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every step's matrices and adjoints (2, d, d, Bm) for value rows v (B, K)."""
        E = self._table(self._exponents, v, len(self.param))
        fwd: list[np.ndarray] = [np.empty(0)] * len(self.steps)
        adj: list[np.ndarray] = [np.empty(0)] * len(self.steps)
        for i, (u, u_dag) in self.constant.items():
            fwd[i], adj[i] = u, u_dag
        for g, ps in self.groups.items():
            w = np.exp(1j * np.pi * E[ps][:, :, None] * self.phases[g][:, None, :])      # (S, B, J)
            # Projectors are Hermitian: U^dagger = sum_j conj(w_j) P_j.
            u = _kernel_layout(np.einsum("sbj,sjxy->sxyb", w, self.projectors[g]))
            u_dag = _kernel_layout(np.einsum("sbj,sjxy->sxyb", w.conj(), self.projectors[g]))
            for s, p in enumerate(ps):
                fwd[self.param[p]], adj[self.param[p]] = u[s], u_dag[s]
        return fwd, adj

    def forward(self, st: np.ndarray, fwd: list[np.ndarray]) -> None:
        for step, m in zip(self.steps, fwd):
            _apply(st, m, step.axes, self.n)

    def backward(self, psi: np.ndarray, lam: np.ndarray, adj: list[np.ndarray], v: np.ndarray) -> np.ndarray:
        """d/d values (B, K) of sum <lam|psi> terms: ``psi`` the final states, ``lam`` the
        cotangent-weighted observables applied to them (both consumed)."""
        slopes = self._table(self._slopes, v, sum(len(r) for r in self.slope_rows))
        grad = np.zeros((v.shape[0], v.shape[1]))
        p = len(self.param) - 1
        tmp = np.empty_like(psi)
        for i in range(len(self.steps) - 1, -1, -1):
            axes = self.steps[i].axes
            if p >= 0 and self.param[p] == i:
                tmp[:] = psi
                _apply(tmp, self.generators[p], axes, self.n)
                # d/de 2 Re<lam|U psi> = 2 Re<lam| i pi H psi_out> = -2 pi Im<lam|H psi_out>
                r = -2.0 * np.pi * (lam[0] * tmp[1] - lam[1] * tmp[0]).sum(axis=0)
                for k, row in self.slope_rows[p]:
                    grad[:, k] += r * slopes[row]
                p -= 1
            _apply(psi, adj[i], axes, self.n)
            _apply(lam, adj[i], axes, self.n)
        return grad


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
        return _Step(axes, unitary, derivatives, exponent, (phases, projectors))

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

    @cached_property
    def _program(self) -> _Program:
        return _Program(self)

    def _run(self, v: np.ndarray, initial_state: np.ndarray | None) -> tuple[np.ndarray, list[np.ndarray]]:
        """Final states in kernel layout (2, 2^n, B) and every step's adjoint matrices."""
        B = v.shape[0]
        st = np.zeros((2, 1 << self.n_qubits, B))
        if initial_state is None:
            st[0, 0] = 1.0
        else:
            init = self._initial(B, initial_state).reshape(B, -1)
            st[0], st[1] = init.real.T, init.imag.T
        fwd, adj = self._program.gates(v)
        self._program.forward(st, fwd)
        return st, adj

    def states(self, values: np.ndarray | Sequence[float] | None = None,
               initial_state: np.ndarray | None = None) -> np.ndarray:
        """Final states: (2^n,) for one value row, (B, 2^n) for a batch."""
        v, single = self._values(values)
        st, _ = self._run(v, initial_state)
        psi = (st[0] + 1j * st[1]).T
        return psi[0] if single else psi

    def expectation(self, values: np.ndarray | Sequence[float] | None, hamiltonian: PauliSumLike | PauliTerms
                    ) -> float | np.ndarray:
        """<H> per value row."""
        v, single = self._values(values)
        e = self.forward(v, [hamiltonian])[0][:, 0]
        return float(e[0]) if single else e

    def value_and_grad(self, values: np.ndarray | Sequence[float], hamiltonian: PauliSumLike | PauliTerms
                       ) -> tuple[float | np.ndarray, np.ndarray]:
        """(<H>, d<H>/d values) by the adjoint method: one forward and one backward pass."""
        v, single = self._values(values)
        energy, grad = self.vjp(v, [hamiltonian], np.ones((v.shape[0], 1)))
        return (float(energy[0, 0]), grad[0]) if single else (energy[:, 0], grad)

    def forward(self, values: np.ndarray, observables: Sequence[PauliSumLike | PauliTerms]
                ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Expectations (B, K) of K observables, and their pullback: cotangent (B, K) ->
        sum_k cotangent[b, k] d<O_k>_b / d values[b] (B, n_symbols), one adjoint pass that reuses
        this forward pass's gates and final states."""
        v, _ = self._values(values)
        terms = [self._terms(o) for o in observables]
        st, adj = self._run(v, None)
        flat = (st[0] + 1j * st[1]).T                                       # (B, 2^n)
        applied = [h.apply(flat) for h in terms]
        expectations = np.stack([np.einsum("bi,bi->b", flat.conj(), a).real for a in applied], axis=1)

        def pullback(cotangent: np.ndarray) -> np.ndarray:
            g = np.asarray(cotangent, dtype=np.float64).reshape(v.shape[0], len(terms))
            lam = sum((g[:, k, None] * a for k, a in enumerate(applied)), np.zeros_like(flat)).T
            return self._program.backward(st.copy(), np.ascontiguousarray(np.stack([lam.real, lam.imag])), adj, v)

        return expectations, pullback

    def vjp(self, values: np.ndarray, observables: Sequence[PauliSumLike | PauliTerms], cotangent: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
        """Expectations (B, K) of K observables and the vector-Jacobian product
        sum_k cotangent[b, k] d<O_k>_b / d values[b] (B, n_symbols), by one adjoint pass:
        the cotangent-weighted observable is applied once and goes back through the circuit."""
        expectations, pullback = self.forward(values, observables)
        return expectations, pullback(cotangent)

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
