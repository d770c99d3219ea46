"""Optimizers behind one interface: ``step = compute_grad + apply_grad`` (as PennyLane).

An optimizer only sees an ``Objective`` (loss, gradient, and for QNG the
metric tensor) and a flat parameter vector; it knows nothing of circuits or
backends. Its mutable state is a dataclass of arrays and numbers, so
checkpoints and federated rounds can store and restore it exactly
(``state_dict`` / ``load_state_dict``).

``registry.get_optimizer(name, lr, **options)`` builds any of: ``sgd``,
``adam``, ``qng`` (see ``qng``) and ``tunneling`` (see ``tunneling_optimizer``).
"""
from __future__ import annotations

import abc
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np

from qstore.errors import error

log = logging.getLogger(__name__)


class Objective(Protocol):
    """What an optimizer may ask of the problem. ``evaluations`` counts calls of either method."""

    evaluations: int

    def value(self, params: np.ndarray) -> float: ...

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]: ...

    def metric(self, params: np.ndarray, kind: str) -> np.ndarray: ...


S = TypeVar("S", bound="OptimizerState")


@dataclass
class OptimizerState:
    """Base of every optimizer state: the number of steps taken."""

    t: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[S], doc: dict[str, Any]) -> S:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(doc) - names
        if unknown:
            raise error("checkpoint_mismatch", f"{cls.__name__} has no fields {sorted(unknown)}")
        values: dict[str, Any] = {k: (np.array(v, dtype=np.float64) if isinstance(v, np.ndarray) else v)
                                  for k, v in doc.items()}
        return cls(**values)


@dataclass
class StepResult:
    """What one step saw: the loss and gradient at the parameters it started from."""

    params: np.ndarray
    loss: float
    grad: np.ndarray


class Optimizer(abc.ABC):
    """``step(objective, params)`` evaluates the gradient, then moves the parameters."""

    name: ClassVar[str]
    state_class: ClassVar[type[OptimizerState]] = OptimizerState
    #: the optimizer calls ``objective.metric`` (QNG), so the backend must compute it
    needs_metric: ClassVar[bool] = False

    def __init__(self, lr: float):
        if not isinstance(lr, (int, float, np.floating)) or not np.isfinite(lr) or lr <= 0:
            raise error("invalid_argument", f"learning rate must be a positive number, got {lr!r}")
        self.lr = float(lr)
        self.state: OptimizerState | None = None

    def hyperparameters(self) -> dict[str, Any]:
        """Everything that, with the state, determines future steps (part of the config hash)."""
        return {"lr": self.lr}

    def init_state(self, params: np.ndarray) -> OptimizerState:
        return self.state_class()

    def step(self, objective: Objective, params: np.ndarray) -> StepResult:
        if self.state is None:
            self.state = self.init_state(params)
        loss, grad = self.compute_grad(objective, params)
        new = self.apply_grad(grad, params, objective, loss)
        self.state.t += 1
        return StepResult(new, loss, grad)

    def compute_grad(self, objective: Objective, params: np.ndarray) -> tuple[float, np.ndarray]:
        loss, grad = objective.value_and_grad(params)
        if not np.all(np.isfinite(grad)) or not np.isfinite(loss):
            raise error("invalid_argument", "the loss or its gradient is not finite; lower the learning rate")
        return loss, grad

    @abc.abstractmethod
    def apply_grad(self, grad: np.ndarray, params: np.ndarray, objective: Objective, loss: float) -> np.ndarray:
        """New parameters from the gradient at ``params`` (state already initialised)."""

    # -- serialisation --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hyperparameters": self.hyperparameters(),
                "state": None if self.state is None else self.state.to_dict()}

    def load_state_dict(self, doc: dict[str, Any]) -> None:
        if doc.get("name") != self.name:
            raise error("checkpoint_mismatch",
                        f"optimizer state is for {doc.get('name')!r}, this optimizer is {self.name!r}")
        state = doc.get("state")
        self.state = None if state is None else self.state_class.from_dict(state)


@dataclass
class MomentumState(OptimizerState):
    velocity: np.ndarray | None = None


class SGD(Optimizer):
    """Gradient descent with (heavy-ball) momentum: v <- mu v + g; theta <- theta - lr v."""

    name = "sgd"
    state_class = MomentumState

    def __init__(self, lr: float = 0.1, momentum: float = 0.0):
        super().__init__(lr)
        if not 0.0 <= momentum < 1.0:
            raise error("invalid_argument", f"momentum must be in [0, 1), got {momentum}")
        self.momentum = float(momentum)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "momentum": self.momentum}

    def init_state(self, params: np.ndarray) -> MomentumState:
        return MomentumState(velocity=np.zeros_like(params, dtype=np.float64))

    def apply_grad(self, grad: np.ndarray, params: np.ndarray, objective: Objective, loss: float) -> np.ndarray:
        state = self.state
        assert isinstance(state, MomentumState) and state.velocity is not None
        state.velocity = self.momentum * state.velocity + grad
        return params - self.lr * state.velocity


@dataclass
class AdamState(OptimizerState):
    m: np.ndarray | None = None
    v: np.ndarray | None = None


def adam_update(state: AdamState, grad: np.ndarray, lr: float, beta1: float, beta2: float, eps: float) -> np.ndarray:
    """Advance the moments (``state.t`` counts steps already taken) and return the step to subtract."""
    assert state.m is not None and state.v is not None
    t = state.t + 1
    state.m = beta1 * state.m + (1.0 - beta1) * grad
    state.v = beta2 * state.v + (1.0 - beta2) * grad * grad
    m_hat = state.m / (1.0 - beta1 ** t)
    v_hat = state.v / (1.0 - beta2 ** t)
    return lr * m_hat / (np.sqrt(v_hat) + eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction."""

    name = "adam"
    state_class = AdamState

    def __init__(self, lr: float = 0.05, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0 and eps > 0):
            raise error("invalid_argument", "Adam needs 0 <= beta1, beta2 < 1 and eps > 0")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def init_state(self, params: np.ndarray) -> AdamState:
        return AdamState(m=np.zeros_like(params, dtype=np.float64), v=np.zeros_like(params, dtype=np.float64))

    def apply_grad(self, grad: np.ndarray, params: np.ndarray, objective: Objective, loss: float) -> np.ndarray:
        assert isinstance(self.state, AdamState)
        new: np.ndarray = params - adam_update(self.state, grad, self.lr, self.beta1, self.beta2, self.eps)
        return new
