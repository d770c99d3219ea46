"""VQE: ``minimize`` <psi(theta)|H|psi(theta)> over a parameterised circuit with the training optimizers.

The circuit is any unitary cirq circuit with sympy parameters (or a
``CircuitSpec``, whose ansatz then runs on |0...0>), H a weighted sum of Pauli
strings. Energies and gradients come from ``qstore.circuits.compiled_circuit``
(exact, adjoint method); for QNG the Fubini–Study metric comes from the exact
derivative states d psi / d theta_k, built in one forward pass that carries
all of them beside psi.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
import sympy

from qstore.circuits.compiled_circuit import CompiledCircuit, apply_matrix
from qstore.circuits.density_matrix import DensityMatrixBackend
from qstore.circuits.metric import fubini_study_metric
from qstore.circuits.observables import PauliSumLike, PauliTerms, pauli_terms
from qstore.circuits.spec import CircuitSpec
from qstore.errors import error
from qstore.training.optimizers import Optimizer
from qstore.training.registry import get_optimizer
from qstore.training.tunneling_optimizer import TunnelingState

log = logging.getLogger(__name__)


def circuit_symbols(circuit: cirq.AbstractCircuit) -> list[sympy.Symbol]:
    """The circuit's parameters in order of first appearance (ties within an operation by name)."""
    seen: dict[sympy.Symbol, None] = {}
    for op in circuit.all_operations():
        for sym in sorted(cirq.parameter_symbols(op), key=str):
            seen.setdefault(sym, None)
    return list(seen)


def state_derivatives(compiled: CompiledCircuit, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(psi (2^n,), d psi / d values_k (K, 2^n)) for one value row, exactly.

    The K derivative states travel beside psi as one batch: every gate acts on
    all of them, and a gate depending on parameter k adds dU/dk applied to the
    state entering it into slot k (the product rule, gate by gate).
    """
    v = values[None, :]
    n, K = compiled.n_qubits, len(compiled.symbols)
    psi = np.zeros((1,) + (2,) * n, dtype=np.complex128)
    psi.reshape(-1)[0] = 1.0
    derivs = np.zeros((K,) + (2,) * n, dtype=np.complex128)
    for step in compiled.steps:
        before = psi
        u = step.unitary(v)
        psi = apply_matrix(before, u, step.axes)
        derivs = apply_matrix(derivs, u, step.axes)
        for k, derivative in step.derivatives:
            derivs[k] += apply_matrix(before, derivative(v), step.axes)[0]
    return psi.reshape(-1), derivs.reshape(K, -1)


class NoisyHamiltonianObjective:
    """<H> as a density-matrix backend measures it (noise, readout, mitigation), central-difference gradient."""

    def __init__(self, backend: DensityMatrixBackend, circuit: cirq.AbstractCircuit, symbols: list[sympy.Symbol],
                 hamiltonian: PauliSumLike, qubits: list[cirq.Qid], step: float = 1e-3):
        self.backend, self.circuit, self.symbols, self.hamiltonian = backend, circuit, symbols, hamiltonian
        self.qubits, self.step = qubits, step
        self.evaluations = 0

    def value(self, params: np.ndarray) -> float:
        self.evaluations += 1
        return self.backend.energy(self.circuit, self.hamiltonian, dict(zip(self.symbols, map(float, params))),
                                   self.qubits)

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        grad = np.empty(len(params))
        for k in range(len(params)):
            shift = np.zeros(len(params))
            shift[k] = self.step
            grad[k] = (self.value(params + shift) - self.value(params - shift)) / (2 * self.step)
        return self.value(params), grad


class HamiltonianObjective:
    """<H> of a compiled circuit as an optimizer ``Objective``."""

    def __init__(self, compiled: CompiledCircuit, hamiltonian: PauliTerms, blocks: np.ndarray):
        self.compiled = compiled
        self.hamiltonian = hamiltonian
        self.blocks = blocks            # block id of every parameter, for the block-diagonal metric
        self.evaluations = 0

    def value(self, params: np.ndarray) -> float:
        self.evaluations += 1
        return float(self.compiled.expectation(params, self.hamiltonian))

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        energy, grad = self.compiled.value_and_grad(params, self.hamiltonian)
        return float(energy), np.asarray(grad, dtype=np.float64)

    def metric(self, params: np.ndarray, kind: str) -> np.ndarray:
        psi, derivs = state_derivatives(self.compiled, np.asarray(params, dtype=np.float64))
        g = fubini_study_metric(psi[None], derivs[None], "full")[0]
        if kind == "diag":
            return np.diag(np.diag(g))
        if kind == "block":
            return np.where(self.blocks[:, None] == self.blocks[None, :], g, 0.0)
        return g


@dataclass
class MinimizeResult:
    """Final and best parameters and energies, and the energy before every step."""

    params: np.ndarray
    energy: float
    best_params: np.ndarray
    best_energy: float
    energies: list[float] = field(default_factory=list)
    steps: int = 0
    evaluations: int = 0
    converged: bool = False
    seconds: float = 0.0
    optimizer_state: dict[str, Any] = field(default_factory=dict)


def hamiltonian_objective(circuit: cirq.AbstractCircuit | CircuitSpec, hamiltonian: PauliSumLike,
                          symbols: Sequence[sympy.Symbol | str] | None = None) -> HamiltonianObjective:
    """<H> over the circuit's parameters as an optimizer ``Objective`` (``minimize``'s arguments)."""
    compiled, blocks, qubits = _compile(circuit, symbols)
    return HamiltonianObjective(compiled, pauli_terms(hamiltonian, compiled.n_qubits, qubits or compiled.qubits),
                                blocks)


def _bound(circuit: cirq.AbstractCircuit | CircuitSpec) -> tuple[cirq.AbstractCircuit, None, list[cirq.Qid] | None]:
    """The circuit minimize works on: a spec's ansatz with zero encoding angles, or the circuit itself."""
    if isinstance(circuit, CircuitSpec):
        raw, _, input_symbols = circuit.to_cirq()
        return cirq.resolve_parameters(raw, {s: 0.0 for s in input_symbols}), None, list(circuit.qubits)
    return circuit, None, None


def _compile(circuit: cirq.AbstractCircuit | CircuitSpec, symbols: Sequence[sympy.Symbol | str] | None
             ) -> tuple[CompiledCircuit, np.ndarray, list[cirq.Qid] | None]:
    if isinstance(circuit, CircuitSpec):
        raw, theta_symbols, input_symbols = circuit.to_cirq()
        # The ansatz on |0...0>: zero encoding angles make every encoding gate the identity.
        bare = cirq.resolve_parameters(raw, {s: 0.0 for s in input_symbols})
        per_layer = 3 * circuit.n_qubits
        blocks = np.arange(circuit.n_params) // per_layer
        return CompiledCircuit(bare, theta_symbols, circuit.qubits), blocks, circuit.qubits
    if not isinstance(circuit, cirq.AbstractCircuit):
        raise error("invalid_argument", "circuit must be a cirq circuit with sympy parameters or a CircuitSpec")
    order = [sympy.Symbol(s) if isinstance(s, str) else s for s in symbols] if symbols else circuit_symbols(circuit)
    # Block = moment of a parameter's first use: gates in one moment commute.
    first_moment: dict[sympy.Symbol, int] = {}
    for m, moment in enumerate(circuit.moments):
        for sym in cirq.parameter_symbols(moment):
            first_moment.setdefault(sym, m)
    blocks = np.array([first_moment.get(s, -1) for s in order])
    return CompiledCircuit(circuit, order), blocks, None


def minimize(circuit: cirq.AbstractCircuit | CircuitSpec, hamiltonian: PauliSumLike, params0: Any,
             optimizer: str | Optimizer = "adam", steps: int = 100, lr: float | None = None,
             symbols: Sequence[sympy.Symbol | str] | None = None, tol: float | None = None,
             target: float | None = None, target_tol: float = 1e-6,
             callback: Callable[[int, float, np.ndarray], None] | None = None,
             backend: DensityMatrixBackend | None = None, **optimizer_options: Any) -> MinimizeResult:
    """Minimise <H> over the circuit's parameters.

    Args:
        circuit: a cirq circuit with sympy parameters, or a ``CircuitSpec`` (its ansatz on |0...0>).
        hamiltonian: ``cirq.PauliSum`` or ``[(coefficient, "XZ"), (c, {0: "X"}), ...]``.
        params0: initial parameters, in ``symbols`` order (default: order of first appearance;
            for a ``CircuitSpec`` its theta order).
        optimizer: a name (``sgd``, ``adam``, ``qng``, ``tunneling``) or an ``Optimizer``.
        steps: maximum number of optimizer steps.
        lr: step size (default: the optimizer's).
        tol: stop when the energy changes by less than ``tol`` between steps.
        target: stop once the energy is within ``target_tol`` of this value.
        callback: ``callback(step, energy, params)`` before every step.
        backend: a ``density_matrix`` backend: minimise <H> as it measures it (its noise, readout error
            and mitigation), with central-difference gradients; None (default) is exact and adjoint.
        optimizer_options: extra optimizer arguments (``lam``, ``metric``, ``momentum``, ``seed`` ...).
    """
    exact = hamiltonian_objective(circuit, hamiltonian, symbols)
    compiled = exact.compiled
    objective: HamiltonianObjective | NoisyHamiltonianObjective = exact
    if backend is not None:
        bare = exact.compiled
        source, _, qubits = _bound(circuit)
        objective = NoisyHamiltonianObjective(backend, source, bare.symbols, hamiltonian, qubits or bare.qubits)
    params = np.array(params0, dtype=np.float64).reshape(-1)
    if params.shape != (len(compiled.symbols),) or not np.all(np.isfinite(params)):
        raise error("invalid_parameters", f"params0 must be {len(compiled.symbols)} finite numbers for symbols "
                                          f"{[str(s) for s in compiled.symbols]}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise error("invalid_argument", f"steps must be a non-negative integer, got {steps!r}")
    opt = get_optimizer(optimizer, lr, **optimizer_options)
    energies: list[float] = []
    converged = False
    start = time.perf_counter()
    best_energy, best_params = np.inf, params.copy()
    for k in range(steps):
        result = opt.step(objective, params)
        energies.append(result.loss)
        if result.loss < best_energy:
            best_energy, best_params = result.loss, params.copy()
        if callback is not None:
            callback(k, result.loss, params)
        params = result.params
        if target is not None and abs(result.loss - target) <= target_tol:
            converged = True
            break
        if tol is not None and len(energies) > 1 and abs(energies[-1] - energies[-2]) < tol:
            converged = True
            break
    energy = objective.value(params)
    if energy < best_energy:
        best_energy, best_params = energy, params.copy()
    if isinstance(opt.state, TunnelingState) and opt.state.best_loss < best_energy:
        best_energy, best_params = opt.state.best_loss, opt.state.best_params.copy()
    if target is not None and not converged:
        converged = abs(energy - target) <= target_tol
    log.info("minimize: %d steps, %d evaluations, energy %.10g", len(energies), objective.evaluations, energy)
    return MinimizeResult(params, energy, best_params, float(best_energy), energies, len(energies),
                          objective.evaluations, converged, time.perf_counter() - start, opt.state_dict())
