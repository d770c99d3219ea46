"""The tunneling optimizer escapes local minima that trap gradient descent and Adam.

Landscape: E(a, b) = f(a) + f(b) with f(t) = cos(t)/2 + cos(3t), realised exactly
as <H> of the product circuit RY(a) RY(3a) RY(b) RY(3b) on four qubits with
H = Z0/2 + Z1 + Z2/2 + Z3. On [0, 2pi) f has three minima: the global one at
t = pi (f = -1.5) and two local ones near t = 1.09 and t = 5.19 (f = -0.76),
separated by maxima at t = 0 and near 2pi/3, 4pi/3. So E has nine minima: the
global one at (pi, pi), E = -3; four at E = -2.26 (one coordinate at pi); four at
E = -1.52. Only starts in the global basin (about 1/9 of the torus) reach -3 by
local descent.
"""
from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy
from scipy.optimize import minimize_scalar

from qstore.training import TunnelingOptimizer, tunneling_probability
from qstore.vqe import hamiltonian_objective, minimize

A, B = sympy.symbols("a b")
Q = cirq.LineQubit.range(4)
CIRCUIT = cirq.Circuit(cirq.ry(A)(Q[0]), cirq.ry(3 * A)(Q[1]), cirq.ry(B)(Q[2]), cirq.ry(3 * B)(Q[3]))
H = [(0.5, "ZIII"), (1.0, "IZII"), (0.5, "IIZI"), (1.0, "IIIZ")]
GLOBAL = -3.0
BUDGET = 200          # objective evaluations per run (a loss with gradient counts as one, like a loss alone)
RUNS = 20


def f(t: float) -> float:
    return 0.5 * np.cos(t) + np.cos(3 * t)


def test_the_landscape_has_the_documented_minima() -> None:
    objective = hamiltonian_objective(CIRCUIT, H)
    local = minimize_scalar(f, bounds=(0.5, 2.0), method="bounded")
    assert local.x == pytest.approx(1.09, abs=0.01) and local.fun == pytest.approx(-0.76, abs=0.01)
    for point, energy in (((np.pi, np.pi), -3.0), ((np.pi, local.x), -1.5 + local.fun),
                          ((local.x, 2 * np.pi - local.x), 2 * local.fun)):
        e, g = objective.value_and_grad(np.array(point))
        assert e == pytest.approx(energy, abs=1e-6)
        assert np.linalg.norm(g) < 1e-4                            # stationary
        ring = [1e-3 * np.array([np.cos(t), np.sin(t)]) for t in np.linspace(0, 2 * np.pi, 8, endpoint=False)]
        assert all(objective.value(np.array(point) + d) > e for d in ring)      # and a minimum


def _successes(optimizer: str, steps: int, **options) -> tuple[int, int]:
    starts = np.random.default_rng(7).uniform(0, 2 * np.pi, size=(RUNS, 2))
    wins, most = 0, 0
    for i, start in enumerate(starts):
        extra = {"seed": i} if optimizer == "tunneling" else {}
        result = minimize(CIRCUIT, H, start, optimizer=optimizer, steps=steps, lr=0.1, **options, **extra)
        most = max(most, result.evaluations)
        wins += result.energy < GLOBAL + 1e-2
    return wins, most


def test_tunneling_finds_the_global_minimum_far_more_often_than_gd_or_adam() -> None:
    # minimize evaluates once more after the last step; a tunneling step costs two evaluations.
    gd, gd_evals = _successes("sgd", BUDGET - 1)
    adam, adam_evals = _successes("adam", BUDGET - 1)
    tunnel, tunnel_evals = _successes("tunneling", (BUDGET - 1) // 2)
    assert gd_evals == adam_evals == BUDGET and tunnel_evals <= BUDGET
    assert gd <= RUNS // 4 and adam <= RUNS // 4, (gd, adam)        # ~1/9 of the starts are in the basin
    assert tunnel >= 3 * RUNS // 4, tunnel
    assert tunnel >= gd + RUNS // 2 and tunnel >= adam + RUNS // 2


def test_acceptance_follows_the_wkb_rule() -> None:
    assert tunneling_probability(1.0, 0.0, 0.5) == 1.0                        # downhill: always
    assert tunneling_probability(0.5, 0.08, 1.0) == pytest.approx(np.exp(-2 * 0.5 * 0.4))
    # wider and higher barriers tunnel less; hotter systems more
    assert tunneling_probability(2.0, 0.1, 1.0) < tunneling_probability(1.0, 0.1, 1.0)
    assert tunneling_probability(1.0, 0.4, 1.0) < tunneling_probability(1.0, 0.1, 1.0)
    assert tunneling_probability(1.0, 0.1, 2.0) > tunneling_probability(1.0, 0.1, 1.0)


def test_temperature_cools_and_jumps_are_counted() -> None:
    opt = TunnelingOptimizer(lr=0.1, temperature=1.0, cooling=0.9, min_temperature=0.5, seed=3)
    objective = hamiltonian_objective(CIRCUIT, H)
    params = np.array([0.0, 0.0])                                          # the global maximum
    for _ in range(10):
        params = opt.step(objective, params).params
    assert opt.state.temperature == 0.5                                     # 0.9^10 < 0.5: at the floor
    assert opt.state.proposed == 10 and 0 < opt.state.accepted <= 10
    assert opt.state.best_loss <= objective.value(params) + 1e-12
    assert objective.evaluations == 21
