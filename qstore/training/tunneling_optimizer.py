"""Tunneling optimizer: annealed local descent plus long jumps accepted with a WKB tunneling probability.

The exact rule, per step (``t`` counts steps from 0):

1. Evaluate loss L and gradient g at theta (one evaluation).
2. Every ``jump_every``-th step propose a long jump: a uniformly random
   direction u (|u| = 1) and a length l ~ Uniform(jump_min, jump_max);
   theta' = theta + l u, and evaluate L' = L(theta') (one more evaluation).
   Treat the jump as crossing a barrier of width w = l and height
   h = max(0, L' - L), and accept it with the WKB tunneling probability

       P = exp(-2 w sqrt(2 h) / T)

   (a square barrier for a unit-mass particle, T in the role of hbar). A jump
   that lands lower (h = 0) is always taken; a jump uphill is taken less often
   the higher and the wider the barrier, and ever less as T cools. Unlike
   classical Metropolis, exp(-h / T), a thin barrier is crossed even when tall.
3. If the jump was accepted, theta <- theta' and the local Adam moments are
   reset (they describe the basin just left). Otherwise take a local Adam step.
4. Cool: T <- max(T_min, T * cooling).

The best point evaluated so far is kept in the state (``best_params``,
``best_loss``), which ``minimize`` returns for deterministic objectives.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from qstore.errors import error

from .optimizers import AdamState, Objective, Optimizer, OptimizerState, adam_update
from .rng_state import restore_rng, rng_state

log = logging.getLogger(__name__)


@dataclass
class TunnelingState(OptimizerState):
    temperature: float = 1.0
    local: dict[str, Any] | None = None            # AdamState.to_dict() of the current basin
    rng: str = ""                                  # rng_state() text
    best_loss: float = float("inf")
    best_params: np.ndarray | None = None
    proposed: int = 0
    accepted: int = 0


def tunneling_probability(width: float, height: float, temperature: float) -> float:
    """exp(-2 w sqrt(2 h) / T) for a barrier of width w and height h >= 0."""
    return float(np.exp(-2.0 * width * np.sqrt(2.0 * max(0.0, height)) / temperature))


class TunnelingOptimizer(Optimizer):
    """Annealing with tunneling jumps (module docstring has the exact rule).

    Args:
        lr: Adam step size for the local steps.
        temperature: initial T.
        cooling: geometric cooling factor per step.
        min_temperature: floor of T.
        jump_every: propose a jump every this many steps.
        jump_min, jump_max: range of jump lengths (Euclidean, in parameter units: radians for angles).
        seed: seeds the jump proposals and acceptance draws.
    """

    name = "tunneling"
    state_class = TunnelingState

    def __init__(self, lr: float = 0.05, temperature: float = 1.0, cooling: float = 0.99,
                 min_temperature: float = 1e-3, jump_every: int = 1, jump_min: float = 0.5,
                 jump_max: float = float(np.pi), seed: int = 0,
                 beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        if not (temperature > 0 and 0 < cooling <= 1 and 0 < min_temperature <= temperature):
            raise error("invalid_argument", "tunneling needs temperature > 0, 0 < cooling <= 1 and "
                                            "0 < min_temperature <= temperature")
        if int(jump_every) < 1 or not 0 <= jump_min <= jump_max:
            raise error("invalid_argument", "tunneling needs jump_every >= 1 and 0 <= jump_min <= jump_max")
        self.temperature, self.cooling = float(temperature), float(cooling)
        self.min_temperature = float(min_temperature)
        self.jump_every = int(jump_every)
        self.jump_min, self.jump_max = float(jump_min), float(jump_max)
        self.seed = int(seed)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def hyperparameters(self) -> dict[str, Any]:
        # No seed: it only starts the RNG, whose exact state then lives in the optimizer state.
        return {"lr": self.lr, "temperature": self.temperature, "cooling": self.cooling,
                "min_temperature": self.min_temperature, "jump_every": self.jump_every,
                "jump_min": self.jump_min, "jump_max": self.jump_max,
                "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def init_state(self, params: np.ndarray) -> TunnelingState:
        return TunnelingState(temperature=self.temperature, local=self._fresh_local(params),
                              rng=rng_state(np.random.default_rng(self.seed)))

    @staticmethod
    def _fresh_local(params: np.ndarray) -> dict[str, Any]:
        zeros = np.zeros_like(params, dtype=np.float64)
        return AdamState(m=zeros, v=zeros.copy()).to_dict()

    def _remember(self, state: TunnelingState, loss: float, params: np.ndarray) -> None:
        if loss < state.best_loss:
            state.best_loss, state.best_params = float(loss), params.copy()

    def apply_grad(self, grad: np.ndarray, params: np.ndarray, objective: Objective, loss: float) -> np.ndarray:
        state = self.state
        assert isinstance(state, TunnelingState) and state.local is not None
        self._remember(state, loss, params)
        rng = restore_rng(state.rng)
        new = None
        if state.t % self.jump_every == 0:
            direction = rng.standard_normal(params.shape)
            direction /= np.linalg.norm(direction)
            width = rng.uniform(self.jump_min, self.jump_max)
            candidate = params + width * direction
            cand_loss = objective.value(candidate)
            self._remember(state, cand_loss, candidate)
            state.proposed += 1
            p = tunneling_probability(width, cand_loss - loss, state.temperature)
            if rng.uniform() < p:
                new = candidate
                state.accepted += 1
                state.local = self._fresh_local(params)
                log.debug("tunneling jump accepted: w=%.3f dL=%.4g T=%.4g p=%.3f", width, cand_loss - loss,
                          state.temperature, p)
        if new is None:
            local = AdamState.from_dict(state.local)
            new = params - adam_update(local, grad, self.lr, self.beta1, self.beta2, self.eps)
            local.t += 1
            state.local = local.to_dict()
        state.rng = rng_state(rng)
        state.temperature = max(self.min_temperature, state.temperature * self.cooling)
        return new
