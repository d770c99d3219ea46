"""Choosing each round's participants by a QUBO: much data of every label, fast and healthy nodes.

``selection="qubo"`` picks m = ⌈fraction·N⌉ participants by minimising, over x ∈ {0,1}^N,

    E(x) = w_coverage · Σ_c (Σ_i x_i h_ic − T_c)² / S²    (cover every label's share of a full round;
                                                        the cross terms h_i·h_j penalise redundancy)
         − w_size · Σ_i x_i n_i / max n                (more data)
         + w_latency · Σ_i x_i ℓ_i / max ℓ              (answers fast)
         − w_age · Σ_i x_i min(a_i, 5) / 5              (not asked for a while: every shard is visited)
         + w_open · Σ_i x_i [breaker open]
         + λ (Σ_i x_i − m)²                              (exactly m; λ outweighs everything else)

with h_ic participant i's rows of label c (from its ``Summary``), S the rows the m largest
participants hold together (the most one round can see), T_c = g_c·S label c's share of
it under the global label mix g, n_i its rows, ℓ_i its last latency and a_i the rounds
since it was last picked. The coverage term rewards each label's rows until its share is
met and penalises more of a label already covered, so a selection is good when it brings
much data of every label, not merely a balanced trickle. Solvers: ``anneal`` (dwave-samplers'
simulated annealing, 64 reads, then one-in-one-out swaps), ``qaoa`` (p-layer QAOA with the
XY mixer from the Dicke state, so it only visits selections of exactly m; simulated exactly
for N <= 12; the most probable bitstring) and ``exhaustive`` (every subset of size m, for
checking). Each pick comes with why: its share of every term.

Label counts reveal each participant's label distribution to the coordinator: under
central DP that would escape the accountant, and QUBO selection is not the uniform
sampling DP amplification assumes, so the coordinator refuses the combination.
"""
from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qstore.errors import error

log = logging.getLogger(__name__)

SOLVERS = ("anneal", "qaoa", "exhaustive")
WEIGHTS = {"coverage": 4.0, "size": 0.2, "latency": 0.1, "age": 1.0, "open": 5.0}
QAOA_MAX_QUBITS = 12


@dataclass
class Candidate:
    """What the coordinator knows about one participant when it selects."""

    name: str
    n: int
    label_counts: dict[Any, int] = field(default_factory=dict)
    latency: float | None = None
    open: bool = False
    age: int = 0


@dataclass
class Qubo:
    """E(x) = Σ_i linear_i x_i + Σ_{i<j} pairs_ij x_i x_j (+ offset), with each term's share of `linear`."""

    linear: np.ndarray
    pairs: np.ndarray  # symmetric, zero diagonal; E counts each pair once (i < j)
    terms: dict[str, np.ndarray]
    coverage_pairs: np.ndarray

    def energy(self, x: np.ndarray) -> np.ndarray:
        """E for one bitstring (N,) or a batch (B, N)."""
        x = np.asarray(x, dtype=np.float64)
        return x @ self.linear + 0.5 * np.einsum("...i,ij,...j->...", x, self.pairs, x)


def build_qubo(cands: list[Candidate], m: int, weights: dict[str, float] | None = None) -> Qubo:
    w = {**WEIGHTS, **(weights or {})}
    k = len(cands)
    classes = sorted({c for cand in cands for c in cand.label_counts}, key=str)
    hist = np.array([[cand.label_counts.get(c, 0) for c in classes] for cand in cands], dtype=np.float64)
    rows = hist.sum(axis=1)
    g = hist.sum(axis=0) / max(rows.sum(), 1.0)
    full = max(float(np.sort(rows)[-m:].sum()), 1.0)  # S: the rows of the m largest
    target = g * full  # T_c
    sizes = np.array([c.n for c in cands], dtype=np.float64)
    known = [c.latency for c in cands if c.latency is not None]
    fill = float(np.median(known)) if known else 0.0
    lat = np.array([fill if c.latency is None else c.latency for c in cands])
    terms = {
        "coverage": w["coverage"] * (np.sum(hist * hist, axis=1) - 2 * hist @ target) / full ** 2,
        "size": -w["size"] * sizes / max(sizes.max(initial=0.0), 1.0),
        "latency": w["latency"] * lat / max(lat.max(initial=0.0), 1e-9),
        "age": -w["age"] * np.minimum([c.age for c in cands], 5) / 5.0,
        "breaker": w["open"] * np.array([c.open for c in cands], dtype=np.float64),
    }
    coverage_pairs = w["coverage"] * 2 * (hist @ hist.T) / full ** 2
    np.fill_diagonal(coverage_pairs, 0.0)
    linear = sum(terms.values(), np.zeros(k))
    # λ larger than any change the other terms can make by adding or dropping one participant
    lam = 1.0 + np.abs(linear).max(initial=0.0) + coverage_pairs.sum(axis=1).max(initial=0.0)
    pairs = coverage_pairs + 2 * lam * (1 - np.eye(k))
    return Qubo(linear + lam * (1 - 2 * m), pairs, terms, coverage_pairs)


def exhaustive(qubo: Qubo, m: int) -> np.ndarray:
    """The best subset of exactly m (ties: the first in lexicographic order)."""
    k = len(qubo.linear)
    subsets = np.array(list(itertools.combinations(range(k), m)))
    x = np.zeros((len(subsets), k))
    np.put_along_axis(x, subsets, 1.0, axis=1)
    return x[int(np.argmin(qubo.energy(x)))]


def anneal(qubo: Qubo, m: int, seed: int, reads: int = 64, sweeps: int = 1000) -> np.ndarray:
    """Simulated annealing (dwave-samplers), then repaired to exactly m and polished by swaps."""
    try:
        import dimod
        from dwave.samplers import SimulatedAnnealingSampler
    except ImportError:
        raise error("unavailable", "selection='qubo' with the anneal solver needs dwave-samplers: "
                                   "pip install 'qstore[qubo]'") from None
    k = len(qubo.linear)
    quadratic = {(i, j): float(qubo.pairs[i, j]) for i in range(k) for j in range(i + 1, k) if qubo.pairs[i, j]}
    bqm = dimod.BinaryQuadraticModel({i: float(v) for i, v in enumerate(qubo.linear)}, quadratic, 0.0, "BINARY")
    sample = SimulatedAnnealingSampler().sample(bqm, num_reads=reads, num_sweeps=sweeps, seed=seed % 2 ** 32)
    x = np.array([sample.first.sample[i] for i in range(k)], dtype=np.float64)
    return polish(qubo, repair(qubo, x, m))


def repair(qubo: Qubo, x: np.ndarray, m: int) -> np.ndarray:
    """Add or drop one participant at a time, by energy, until exactly m are picked."""
    x = x.copy()
    while x.sum() != m:
        options = np.flatnonzero(x < 0.5) if x.sum() < m else np.flatnonzero(x > 0.5)
        trial = np.repeat(x[None], len(options), axis=0)
        trial[np.arange(len(options)), options] = 1.0 - trial[np.arange(len(options)), options]
        x = trial[int(np.argmin(qubo.energy(trial)))]
    return x


def polish(qubo: Qubo, x: np.ndarray) -> np.ndarray:
    """Best improving swaps (one in, one out) until none improves. Single bit flips, all the
    annealer makes, must cross the cardinality penalty to move between selections of m;
    swaps move along them directly."""
    x = x.copy()
    while True:
        ins, outs = np.flatnonzero(x < 0.5), np.flatnonzero(x > 0.5)
        if not len(ins) or not len(outs):
            return x
        trial = np.repeat(x[None], len(ins) * len(outs), axis=0)
        rows = np.arange(len(trial))
        trial[rows, np.repeat(ins, len(outs))] = 1.0
        trial[rows, np.tile(outs, len(ins))] = 0.0
        energies = qubo.energy(trial)
        best = int(np.argmin(energies))
        if energies[best] >= qubo.energy(x) - 1e-12:
            return x
        x = trial[best]


def bitstrings(n: int) -> np.ndarray:
    """All 2^n bitstrings, qubit 0 the most significant bit."""
    return ((np.arange(1 << n)[:, None] >> np.arange(n - 1, -1, -1)) & 1).astype(np.float64)


def feasible_states(n: int, m: int) -> np.ndarray:
    """The C(n, m) bitstrings with exactly m ones: the Hamming-weight-m subspace QAOA lives in."""
    z = bitstrings(n)
    return z[z.sum(axis=1) == m]


def qaoa_probabilities(energies: np.ndarray, mixer: tuple[np.ndarray, np.ndarray], gammas: np.ndarray,
                       betas: np.ndarray) -> np.ndarray:
    """|⟨z|ψ(γ, β)⟩|² for p-layer QAOA with the complete-graph XY mixer, from the Dicke state.

    Σ_{i<j} (X_iX_j + Y_iY_j)/2 swaps a 1 and a 0: it keeps the number of ones, so the state
    never leaves the feasible subspace (Hadfield et al., 2019) and needs no penalty. There it
    is the Johnson graph's adjacency matrix, applied through its eigendecomposition `mixer`.
    """
    values, vectors = mixer
    psi = np.full(len(energies), 1 / math.sqrt(len(energies)), dtype=np.complex128)  # the Dicke state
    for gamma, beta in zip(gammas, betas):
        psi = psi * np.exp(-1j * gamma * energies)  # the cost layer is diagonal
        psi = vectors @ (np.exp(-1j * beta * values) * (vectors.T @ psi))
    return np.abs(psi) ** 2


def xy_mixer(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hops = (np.abs(states[:, None, :] - states[None, :, :]).sum(axis=2) == 2).astype(np.float64)
    values, vectors = np.linalg.eigh(hops)
    return values, vectors


def qaoa(qubo: Qubo, m: int, layers: int = 3, seed: int = 0, restarts: int = 4) -> tuple[np.ndarray, float]:
    """(the most probable bitstring of the optimised QAOA state, its probability).

    Energies are measured in units of their spread over the feasible bitstrings, so γ of
    order 1 resolves the differences between candidate selections.
    """
    from scipy.optimize import minimize

    n = len(qubo.linear)
    if n > QAOA_MAX_QUBITS:
        raise error("invalid_argument", f"qaoa selection simulates C(N, m) amplitudes; N={n} > {QAOA_MAX_QUBITS}")
    states = feasible_states(n, m)
    energies = qubo.energy(states)
    scaled = (energies - energies.min()) / max(float(np.ptp(energies)), 1e-12)
    mixer = xy_mixer(states)

    def expected(theta: np.ndarray) -> float:
        return float(qaoa_probabilities(scaled, mixer, theta[:layers], theta[layers:]) @ scaled)

    rng = np.random.default_rng(seed)
    best = None
    for r in range(restarts):
        # a linear ramp (adiabatic-like) start, then random ones
        start = np.concatenate([np.linspace(0.5, 4.0, layers), np.linspace(0.6, 0.1, layers)]) if r == 0 \
            else rng.uniform(0, [2 * math.pi] * layers + [math.pi] * layers)
        result = minimize(expected, start, method="Nelder-Mead", options={"maxiter": 400 * layers, "xatol": 1e-4})
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    probs = qaoa_probabilities(scaled, mixer, best.x[:layers], best.x[layers:])
    top = int(np.argmax(probs))
    return states[top], float(probs[top])


@dataclass
class QuboSelection:
    solver: str = "anneal"
    weights: dict[str, float] = field(default_factory=dict)
    layers: int = 3

    @classmethod
    def of(cls, options: Any) -> QuboSelection:
        if options is None:
            return cls()
        if not isinstance(options, dict) or set(options) - {"solver", "weights", "layers"}:
            raise error("invalid_argument", "selection_options must be a dict with solver, weights, layers")
        sel = cls(**options)
        if sel.solver not in SOLVERS:
            raise error("invalid_argument", f"selection solver must be one of {SOLVERS}, got {sel.solver!r}")
        if not isinstance(sel.weights, dict) or set(sel.weights) - set(WEIGHTS) or not all(
                isinstance(v, (int, float)) and v >= 0 for v in sel.weights.values()):
            raise error("invalid_argument", f"selection weights are non-negative numbers for {sorted(WEIGHTS)}")
        if isinstance(sel.layers, bool) or not isinstance(sel.layers, int) or sel.layers < 1:
            raise error("invalid_argument", f"selection layers must be a positive integer, got {sel.layers!r}")
        return sel

    def select(self, cands: list[Candidate], m: int, seed: int) -> tuple[list[int], dict[str, dict[str, float]]]:
        """Indices of the m picked and, for each, why: its share of every term of the energy."""
        qubo = build_qubo(cands, m, self.weights)
        if self.solver == "exhaustive":
            x = exhaustive(qubo, m)
        elif self.solver == "qaoa":
            x, _ = qaoa(qubo, m, self.layers, seed)
        else:
            x = anneal(qubo, m, seed)
        picked = np.flatnonzero(x > 0.5)
        why = {}
        for i in picked:
            terms = {name: float(v[i]) for name, v in qubo.terms.items()}
            terms["coverage"] += float(qubo.coverage_pairs[i, picked].sum()) / 2  # its half of the overlaps
            why[cands[i].name] = {k: round(v, 6) for k, v in terms.items()}
        return picked.tolist(), why

