"""Observables: products of Pauli Z (model readout) and weighted Pauli sums (VQE).

Basis index convention (as cirq): qubit 0 is the most significant bit, and
bitstrings are written qubit 0 first.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import cirq
import numpy as np

from qstore.errors import error

ObservablesLike = Sequence[int | Sequence[int]]


def _parity(values: np.ndarray) -> np.ndarray:
    """Parity of the set bits of each int64 value."""
    v = values.copy()
    for shift in (32, 16, 8, 4, 2, 1):
        v ^= v >> shift
    return v & 1


@dataclass(frozen=True)
class ZObservables:
    """A list of Z-products, e.g. ((0,), (1, 2)) for <Z_0> and <Z_1 Z_2>."""

    terms: tuple[tuple[int, ...], ...]
    n_qubits: int

    def __len__(self) -> int:
        return len(self.terms)

    @cached_property
    def masks(self) -> np.ndarray:
        return np.array([sum(1 << (self.n_qubits - 1 - q) for q in t) for t in self.terms], dtype=np.int64)

    @cached_property
    def signs(self) -> np.ndarray:
        """(n_obs, 2^n) eigenvalues (+1/-1) of each observable on each basis state."""
        index = np.arange(1 << self.n_qubits, dtype=np.int64)
        return 1.0 - 2.0 * _parity(index[None, :] & self.masks[:, None])

    def from_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """(B, 2^n) Born probabilities -> (B, n_obs) expectations."""
        return probs @ self.signs.T

    def diagonal(self, weights: np.ndarray) -> np.ndarray:
        """Diagonal of sum_k weights[b, k] O_k as a (2^n, B) array."""
        return self.signs.T @ weights.T

    def from_counts(self, counts: Sequence[Mapping[str, int]]) -> np.ndarray:
        """Per-sample bitstring counts -> (B, n_obs) estimated expectations."""
        out = np.zeros((len(counts), len(self.terms)))
        for b, table in enumerate(counts):
            if not table:
                raise error("backend_error", "no measurement counts to estimate expectations from")
            index = np.array([int(k, 2) for k in table], dtype=np.int64)
            weight = np.array(list(table.values()), dtype=np.float64)
            signs = 1.0 - 2.0 * _parity(index[None, :] & self.masks[:, None])
            out[b] = signs @ weight / weight.sum()
        return out


def z_observables(observables: ObservablesLike | ZObservables, n_qubits: int) -> ZObservables:
    """Normalise ``[0, 2, (1, 3)]``-style specs (an int is Z on that qubit) and validate them."""
    if isinstance(observables, ZObservables):
        if observables.n_qubits != n_qubits:
            raise error("invalid_parameters",
                        f"observables are for {observables.n_qubits} qubits, circuit has {n_qubits}")
        return observables
    terms = []
    for item in observables:
        term = (int(item),) if isinstance(item, (int, np.integer)) else tuple(int(q) for q in item)
        if not term or len(set(term)) != len(term) or any(not 0 <= q < n_qubits for q in term):
            raise error("invalid_parameters", f"observable {item!r} must name distinct qubits in [0, {n_qubits})")
        terms.append(term)
    if not terms:
        raise error("invalid_parameters", "at least one observable is needed")
    return ZObservables(tuple(terms), n_qubits)


def counts_from_indices(indices: np.ndarray, n_qubits: int) -> dict[str, int]:
    """Basis-state indices of shots -> {bitstring: count}, qubit 0 first."""
    values, counts = np.unique(indices, return_counts=True)
    return {format(int(v), f"0{n_qubits}b"): int(c) for v, c in zip(values, counts)}


def counts_from_histogram(histogram: np.ndarray, n_qubits: int) -> dict[str, int]:
    """A (2^n,) count vector -> {bitstring: count} without zero entries."""
    nz = np.flatnonzero(histogram)
    return {format(int(v), f"0{n_qubits}b"): int(histogram[v]) for v in nz}


# -- weighted Pauli sums --------------------------------------------------------

PauliSumLike = cirq.PauliSum | cirq.PauliString | Iterable[tuple[float, str | Mapping[int, str]]]


@dataclass(frozen=True)
class PauliTerms:
    """sum_t c_t P_t with P_t = i^(ny_t) X^(x_t) Z^(z_t) on n qubits (bit masks)."""

    coefficients: np.ndarray
    x_masks: np.ndarray
    z_masks: np.ndarray
    n_qubits: int

    def apply(self, state: np.ndarray) -> np.ndarray:
        """H|psi> for states (B, 2^n) complex."""
        index = np.arange(1 << self.n_qubits, dtype=np.int64)
        out = np.zeros_like(state)
        for c, x, z in zip(self.coefficients, self.x_masks, self.z_masks):
            ny = bin(int(x & z)).count("1")
            source = index ^ x
            phase = (1j ** ny) * (1.0 - 2.0 * _parity(source & z))
            out += (c * phase) * state[:, source]
        return out


def pauli_terms(terms: PauliSumLike, n_qubits: int, qubits: Sequence[cirq.Qid] | None = None) -> PauliTerms:
    """Normalise a Hamiltonian.

    Accepts a ``cirq.PauliSum`` / ``cirq.PauliString`` (qubit order ``qubits``,
    default ``cirq.LineQubit.range(n)``) or pairs ``(coefficient, "XZIY")`` /
    ``(coefficient, {qubit_index: "X"})``. Coefficients must be real so the
    operator is Hermitian.
    """
    order = list(qubits) if qubits is not None else cirq.LineQubit.range(n_qubits)
    rows: list[tuple[complex, dict[int, str]]] = []
    if isinstance(terms, cirq.PauliString):
        terms = cirq.PauliSum.from_pauli_strings([terms])
    if isinstance(terms, cirq.PauliSum):
        for ps in terms:
            paulis = {}
            for qubit, pauli in ps.items():
                if qubit not in order:
                    raise error("invalid_parameters", f"Pauli term acts on {qubit}, not among the circuit's qubits")
                paulis[order.index(qubit)] = str(pauli)
            rows.append((complex(ps.coefficient), paulis))
    else:
        for item in terms:
            try:
                coef, spec = item
            except (TypeError, ValueError):
                raise error("invalid_parameters", f"Pauli term {item!r} must be (coefficient, paulis)") from None
            if isinstance(spec, str):
                if len(spec) != n_qubits:
                    raise error("invalid_parameters", f"Pauli string {spec!r} must have {n_qubits} letters")
                spec = {q: p for q, p in enumerate(spec)}
            rows.append((complex(coef), {int(q): str(p).upper() for q, p in dict(spec).items()}))
    coefs, xs, zs = [], [], []
    for coef, paulis in rows:
        if abs(coef.imag) > 1e-12:
            raise error("invalid_parameters", f"coefficient {coef} is not real: the sum must be Hermitian")
        x = z = 0
        for q, p in paulis.items():
            if not 0 <= q < n_qubits or p not in ("I", "X", "Y", "Z"):
                raise error("invalid_parameters", f"bad Pauli {p!r} on qubit {q}")
            bit = 1 << (n_qubits - 1 - q)
            x |= bit if p in ("X", "Y") else 0
            z |= bit if p in ("Z", "Y") else 0
        coefs.append(coef.real)
        xs.append(x)
        zs.append(z)
    return PauliTerms(np.array(coefs), np.array(xs, dtype=np.int64), np.array(zs, dtype=np.int64), n_qubits)


def expectation_pauli_sum(state: np.ndarray, terms: PauliSumLike | PauliTerms,
                          qubits: Sequence[cirq.Qid] | None = None) -> float | np.ndarray:
    """<psi|H|psi> for one state (2^n,) -> float, or a batch (B, 2^n) -> (B,)."""
    psi = np.asarray(state, dtype=np.complex128)
    single = psi.ndim == 1
    psi = psi[None, :] if single else psi
    n = psi.shape[1].bit_length() - 1
    if psi.ndim != 2 or psi.shape[1] != 1 << n:
        raise error("invalid_state", f"state length must be a power of two, got {psi.shape}")
    h = terms if isinstance(terms, PauliTerms) else pauli_terms(terms, n, qubits)
    if h.n_qubits != n:
        raise error("invalid_parameters", f"Hamiltonian is on {h.n_qubits} qubits, state on {n}")
    values = np.einsum("bi,bi->b", psi.conj(), h.apply(psi)).real
    return float(values[0]) if single else values
