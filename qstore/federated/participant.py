"""The participant's side of a round: local training on private data, returning only a delta.

``train_local(task, X, y)`` is the whole of it, a plain synchronous function so the
same code runs in a server job (``federated_fit``), in a thread next to the
coordinator, or on a Ray worker. It rebuilds the global model from the task, trains
it for ``task.epochs`` epochs with the training engine's ``Trainer`` (FedProx adds
μ/2·‖w − w_global‖² to every batch loss through ``Proximal``), and returns an
``Update``: the parameter delta (angle part wrapped into (−π, π]), the row count
and local metrics. With local DP the delta is clipped and noised here, and the
metrics and row count, which would leak past the noise, are withheld.

``Participant`` is what the coordinator talks to; ``LocalParticipant`` holds its
data in this process (arrays or a dataset in an embedded database), and
``qstore.federated.remote.RemoteParticipant`` reaches a Q-Store server.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from qstore.errors import error
from qstore.training.models import Model
from qstore.training.optimizers import Objective, Optimizer, StepResult
from qstore.training.registry import model_from_config
from qstore.training.trainer import Trainer
from qstore_client.api import QStoreAPI

from .angles import wrap
from .compression import Compression, ErrorFeedback
from .executors import Executor, InProcessExecutor
from .messages import RoundTask, Summary, Update
from .privacy import privatize
from .secagg import SessionStore, client_for

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]


class ProximalObjective:
    """loss(w) + μ/2·‖w − anchor‖², gradient + μ·(w − anchor); the metric is the inner one's."""

    def __init__(self, inner: Objective, anchor: np.ndarray, mu: float):
        self.inner, self.anchor, self.mu = inner, anchor, mu

    @property
    def evaluations(self) -> int:
        return self.inner.evaluations

    def value(self, params: np.ndarray) -> float:
        d = params - self.anchor
        return self.inner.value(params) + 0.5 * self.mu * float(d @ d)

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        d = params - self.anchor
        loss, grad = self.inner.value_and_grad(params)
        return loss + 0.5 * self.mu * float(d @ d), grad + self.mu * d

    def metric(self, params: np.ndarray, kind: str) -> np.ndarray:
        return self.inner.metric(params, kind)


class Proximal(Optimizer):
    """FedProx: any optimizer, stepping on the proximal objective around the global model."""

    def __init__(self, inner: Optimizer, anchor: np.ndarray, mu: float):
        self.inner = inner
        self.anchor = np.array(anchor, dtype=np.float64)
        self.mu = float(mu)
        self.name = inner.name  # type: ignore[misc]  # checkpoints name the optimizer that moves the weights
        self.lr = inner.lr

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self.inner.state

    @state.setter
    def state(self, value: Any) -> None:
        self.inner.state = value

    def hyperparameters(self) -> dict[str, Any]:
        return {**self.inner.hyperparameters(), "mu": self.mu}

    def step(self, objective: Objective, params: np.ndarray) -> StepResult:
        return self.inner.step(ProximalObjective(objective, self.anchor, self.mu), params)

    def apply_grad(self, grad: np.ndarray, params: np.ndarray, objective: Objective, loss: float) -> np.ndarray:
        return self.inner.apply_grad(grad, params, objective, loss)


def build_model(task: RoundTask) -> Model:
    """The task's global model; refuses a config, state or parameter vector that do not fit together."""
    model = model_from_config(task.model)
    try:
        model.load_state(task.state)
    except (KeyError, TypeError, ValueError) as exc:
        raise error("invalid_argument", f"the task's model state does not fit a {model.kind} model: {exc!r}") from None
    if task.params.shape != (model.n_params,):
        raise error("invalid_parameters", f"global parameters have shape {task.params.shape}, the model needs "
                                          f"({model.n_params},)")
    model.params = task.params.copy()
    return model


def train_local(task: RoundTask, X: np.ndarray, y: np.ndarray, progress: ProgressFn | None = None,
                should_stop: Callable[[], bool] | None = None, feedback: ErrorFeedback | None = None) -> Update:
    """Train the task's global model on (X, y) and return the update (never the data).

    With ``task.compression`` the delta is quantised (``compression``), carrying what
    rounding lost into the next round through `feedback` (this participant's memory).
    """
    start = time.perf_counter()
    model = build_model(task)
    trainer = Trainer(None, model, optimizer=task.optimizer, lr=task.lr, backend=task.backend,
                      gradient=task.gradient, batch_size=task.batch_size, seed=task.seed,
                      run=f"federated-r{task.round}", progress_bar=False)
    if task.mu > 0:
        trainer.optimizer = Proximal(trainer.optimizer, task.params, task.mu)
    # A private event loop: this runs in a worker thread (job, executor) or a Ray task, never on a live loop.
    history = asyncio.run(trainer.fit((X, y), epochs=task.epochs, progress=progress, should_stop=should_stop))
    delta = model.params - task.params
    delta[:model.n_circuit_params] = wrap(delta[:model.n_circuit_params])
    steps = task.epochs * -(-len(X) // task.batch_size)  # batches per epoch, rounded up
    if task.local_dp:
        assert task.clip is not None and task.noise_multiplier is not None
        # Metrics and the row count would leak past the noise: withheld (n=1 gives equal weights).
        update = Update(round=task.round, delta=privatize(delta, task.clip, task.noise_multiplier), n=1, steps=steps)
    else:
        metrics = {k: float(v[-1]) for k, v in history.items() if k in ("loss", model.metric_name)}
        update = Update(round=task.round, delta=delta, n=len(X), metrics=metrics, steps=steps)
    compression = Compression.of(task.compression)
    if compression is not None:
        rng = np.random.default_rng([task.seed, 0x9E3779B9])  # rounding draws apart from the shuffles
        update.compressed, update.delta = (feedback or ErrorFeedback()).apply(task.run, update.delta, compression,
                                                                              rng)
    update.seconds = time.perf_counter() - start
    return update


@runtime_checkable
class Participant(Protocol):
    """A node holding private data. `fit` raises on failure; the coordinator bounds its time."""

    name: str

    async def summary(self, dataset: str) -> Summary: ...

    async def fit(self, task: RoundTask) -> Update: ...

    async def close(self) -> None: ...


@runtime_checkable
class SecureParticipant(Participant, Protocol):
    """A participant that also runs the stages of secure aggregation (``secagg``)."""

    async def secure(self, message: dict[str, Any]) -> dict[str, Any]: ...


class LocalParticipant:
    """A participant in this process: arrays, or a dataset in an embedded ``qstore.Database``.

    Training runs on `executor` (default: a worker thread) so the coordinator's event loop
    stays free, and on a Ray cluster with ``RayExecutor``.
    """

    def __init__(self, data: tuple[np.ndarray, np.ndarray] | QStoreAPI, name: str | None = None,
                 executor: Executor | None = None):
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self._db: QStoreAPI | None = None
        if isinstance(data, tuple) and len(data) == 2:
            X, y = np.asarray(data[0], dtype=np.float64), np.asarray(data[1])
            if X.ndim != 2 or y.shape != (len(X),) or len(X) == 0:
                raise error("invalid_argument",
                            f"participant data must be (X (n, F), y (n,)) with n > 0, got {X.shape} "
                            f"and {y.shape}")
            self._arrays = (X, y)
        elif isinstance(data, QStoreAPI):
            self._db = data
        else:
            raise error("invalid_argument", "a local participant needs (X, y) or a database")
        self.name = name or f"local-{id(self):x}"
        self.executor = executor or InProcessExecutor()
        self._owns_executor = executor is None
        self._sessions = SessionStore()
        self._feedback = ErrorFeedback()

    def __repr__(self) -> str:
        return f"LocalParticipant({self.name!r})"

    async def _data(self, dataset: str) -> tuple[np.ndarray, np.ndarray]:
        if self._arrays is not None:
            return self._arrays
        assert self._db is not None
        return await self._db.load_dataset(dataset)

    async def summary(self, dataset: str) -> Summary:
        return Summary.of(*await self._data(dataset))

    async def fit(self, task: RoundTask) -> Update:
        X, y = await self._data(task.dataset)
        return await self.executor.run(train_local, task, X, y, None, None, self._feedback)

    async def secure(self, message: dict[str, Any]) -> dict[str, Any]:
        """One stage of secure aggregation (``secagg``); ``train`` trains first, then masks only."""
        if message.get("stage") == "train":
            update = await self.fit(message["task"])
            return self._sessions.start(client_for(message["secagg"], update))
        return await asyncio.to_thread(self._sessions.step, message)

    async def close(self) -> None:
        if self._owns_executor:
            await self.executor.close()
