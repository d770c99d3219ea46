"""Fine-tuning with frozen parameter groups: an optimizer step over the trainable entries only.

The optimizer sees a smaller problem: the objective restricted to the free entries of
``params`` (its gradient, and for QNG its metric, sliced to them) and its own state with
every per-parameter array sliced the same way. Afterwards the free entries are written
back; the frozen parameters and their optimizer state (Adam moments, momentum, ...) are
never written, so they stay bit-identical.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np

from qstore.errors import error

from .optimizers import Objective, Optimizer, StepResult


def free_indices(groups: Mapping[str, list[int]], frozen: Iterable[str], n_params: int) -> np.ndarray:
    """Indices of ``params`` outside the frozen groups (``invalid_argument`` for unknown names)."""
    frozen = list(frozen)
    unknown = sorted(set(frozen) - set(groups))
    if unknown:
        raise error("invalid_argument", f"cannot freeze {unknown}: the model's parameter groups are {sorted(groups)}")
    mask = np.ones(n_params, dtype=bool)
    for name in frozen:
        mask[groups[name]] = False
    if not mask.any():
        raise error("invalid_argument", "every parameter is frozen: nothing to train")
    return np.flatnonzero(mask)


class _Restricted:
    """``objective`` as a function of the free entries; the frozen ones are fixed at ``params``."""

    def __init__(self, objective: Objective, params: np.ndarray, free: np.ndarray):
        self.objective, self.params, self.free = objective, params, free

    @property
    def evaluations(self) -> int:
        return self.objective.evaluations

    @evaluations.setter
    def evaluations(self, value: int) -> None:
        self.objective.evaluations = value

    def _full(self, sub: np.ndarray) -> np.ndarray:
        full = self.params.copy()
        full[self.free] = sub
        return full

    def value(self, params: np.ndarray) -> float:
        return self.objective.value(self._full(params))

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = self.objective.value_and_grad(self._full(params))
        return loss, grad[self.free]

    def metric(self, params: np.ndarray, kind: str) -> np.ndarray:
        return self.objective.metric(self._full(params), kind)[np.ix_(self.free, self.free)]


def masked_step(optimizer: Optimizer, objective: Objective, params: np.ndarray, free: np.ndarray) -> StepResult:
    """One ``optimizer.step`` that moves only ``params[free]`` and only their optimizer state."""
    n = len(params)
    if optimizer.state is None:
        optimizer.state = optimizer.init_state(params)
    state = optimizer.state
    full: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, np.ndarray) and value.shape == (n,):
            full[f.name] = value
            setattr(state, f.name, value[free])
    try:
        result = optimizer.step(_Restricted(objective, params, free), params[free])
    finally:
        for name, array in full.items():
            array = array.copy()
            array[free] = getattr(state, name)
            setattr(state, name, array)
    new = params.copy()
    new[free] = result.params
    grad = np.zeros(n)
    grad[free] = result.grad
    return StepResult(new, result.loss, grad)
