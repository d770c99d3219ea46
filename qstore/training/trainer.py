"""The async Trainer: shuffled batches from the database, optimizer steps in a worker thread,
per-epoch metrics in the database, checkpoints with exact resume.

Determinism: one ``numpy.random.Generator`` (seeded by ``seed``) initialises the
parameters and then draws each epoch's shuffle (and SPSA seeds). A checkpoint
stores its exact bit-generator state next to the parameters and the optimizer
state, so ``resume`` + ``fit`` replays the same batches and the same
arithmetic as an uninterrupted run.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
from tqdm import tqdm

from qstore.circuits.backend import Backend, require_metric
from qstore.circuits.registry import get_backend
from qstore.circuits.statevector import warm_up
from qstore.errors import error
from qstore_client.api import QStoreAPI

from .checkpoints import (
    CHECKPOINT,
    RUN_RECORD,
    check_checkpoint,
    checkpoint_id,
    config_hash,
    run_record_id,
    validate_checkpoint,
)
from .data import DataSource, check_features, epoch_batches, source_for
from .freezing import free_indices, masked_step
from .models import Model, Runtime
from .optimizers import Optimizer
from .registry import get_optimizer, model_from_config
from .rng_state import restore_rng, rng_state

log = logging.getLogger(__name__)

History = dict[str, list[float]]
ProgressFn = Callable[[float, str], None]


class BatchObjective:
    """One batch of scaled features and targets as an optimizer ``Objective``."""

    def __init__(self, model: Model, X: np.ndarray, targets: np.ndarray):
        self.model, self.X, self.targets = model, X, targets
        self.evaluations = 0
        self.outputs: np.ndarray | None = None     # model outputs at the last gradient evaluation

    def value(self, params: np.ndarray) -> float:
        self.evaluations += 1
        return self.model.evaluate_batch(self.X, self.targets, params, grad=False).loss

    def value_and_grad(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        self.evaluations += 1
        ev = self.model.evaluate_batch(self.X, self.targets, params, grad=True)
        self.outputs = ev.outputs
        assert ev.grad is not None
        return ev.loss, ev.grad

    def metric(self, params: np.ndarray, kind: str) -> np.ndarray:
        return self.model.metric_tensor(self.X, params, kind)


def _positive_int(value: Any, name: str, zero_ok: bool = False) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        raise error("invalid_argument",
                    f"{name} must be a {'non-negative' if zero_ok else 'positive'} integer, got {value!r}")
    return int(value)


class Trainer:
    """Trains a model on a database dataset (or arrays) with one of the optimizers.

    Args:
        db: a ``QStoreAPI`` (a ``qstore.Database`` or an ``AsyncClient``: datasets, checkpoints,
            metrics); None for arrays only.
        model: a ``VQC``, ``VQCRegressor`` or ``HybridModel``.
        optimizer: ``sgd`` | ``adam`` | ``qng`` | ``tunneling`` or an ``Optimizer``.
        lr: step size.
        backend: a backend name (``statevector``, ``cirq``, ...) or a ``Backend``.
        gradient: ``adjoint`` | ``parameter-shift`` | ``finite-diff`` | ``spsa``.
        batch_size: samples per step.
        seed: seeds parameter initialisation and shuffling (and tunneling proposals).
        run: name of the run (checkpoint and metrics ids); default a fresh unique name.
        optimizer_options: extra optimizer arguments (``momentum``, ``metric``, ``lam`` ...).
        backend_options: arguments for ``get_backend``.
        progress_bar: tqdm bar on stderr; None shows it only when stderr is a terminal.
        freeze: names of ``model.parameter_groups`` left unchanged (fine-tuning); their
            optimizer state is not touched either.
    """

    def __init__(self, db: QStoreAPI | None, model: Model, optimizer: str | Optimizer = "adam", lr: float = 0.05,
                 backend: str | Backend = "statevector", gradient: str = "adjoint", batch_size: int = 32,
                 seed: int = 0, run: str | None = None, optimizer_options: dict[str, Any] | None = None,
                 backend_options: dict[str, Any] | None = None, progress_bar: bool | None = None,
                 freeze: list[str] | tuple[str, ...] = ()):
        if not isinstance(model, Model):
            raise error("invalid_argument",
                        f"model must be a VQC, VQCRegressor or HybridModel, got {type(model).__name__}")
        if not isinstance(freeze, (list, tuple)) or not all(isinstance(name, str) for name in freeze):
            raise error("invalid_argument", f"freeze must be a list of parameter group names, got {freeze!r}")
        self.freeze = sorted(set(freeze))
        free_indices(model.parameter_groups, self.freeze, model.n_params)     # unknown names fail now
        self.db = db
        self.model = model
        self.backend = backend if isinstance(backend, Backend) else get_backend(backend, **(backend_options or {}))
        options = dict(optimizer_options or {})
        if optimizer == "tunneling":
            options.setdefault("seed", seed)
        self.optimizer = get_optimizer(optimizer, lr, **options)
        model.runtime = Runtime(self.backend, gradient)
        self.gradient = model.runtime.gradient
        if self.optimizer.needs_metric:
            require_metric(self.backend)
        # Now, not in the first batch: loading the kernels holds the GIL and, from a worker
        # thread, would stall the event loop that serves requests beside training.
        warm_up()
        self.batch_size = _positive_int(batch_size, "batch_size")
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.run = run or f"{model.kind}-s{self.seed}-{uuid.uuid4().hex[:8]}"
        self.progress_bar = progress_bar
        self.epoch = 0
        self.step = 0
        self.history: History = {}
        self.dataset: str | None = None
        self.checkpoints: list[str] = []

    @classmethod
    async def from_checkpoint(cls, db: QStoreAPI, checkpoint: str, **options: Any) -> Trainer:
        """A trainer rebuilt from a checkpoint (model, optimizer, batch size, gradient) and resumed."""
        doc = await db.load_checkpoint(checkpoint)
        validate_checkpoint(doc)
        cfg = doc["config"]
        opt = doc["optimizer"]
        hyper = dict(opt["hyperparameters"])
        trainer = cls(db, model_from_config(doc["model"]["config"]), optimizer=opt["name"], lr=hyper.pop("lr"),
                      gradient=cfg["gradient"], batch_size=cfg["batch_size"], optimizer_options=hyper,
                      freeze=cfg.get("freeze", ()), **options)
        await trainer.resume(checkpoint)
        return trainer

    # -- config --------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """Everything that must match for a checkpoint to resume exactly (hashed into checkpoints)."""
        config = {"model": self.model.config(),
                  "optimizer": {"name": self.optimizer.name, **self.optimizer.hyperparameters()},
                  "batch_size": self.batch_size, "gradient": self.gradient}
        if self.freeze:
            config["freeze"] = list(self.freeze)
        return config

    # -- training ------------------------------------------------------------------------
    async def fit(self, data: str | tuple[Any, Any] | None = None, epochs: int = 1, checkpoint_every: int = 0,
                  validation: str | tuple[Any, Any] | None = None, progress: ProgressFn | None = None,
                  should_stop: Callable[[], bool] | None = None, progress_bar: bool | None = None) -> History:
        """Train for ``epochs`` more epochs; returns the whole history so far.

        Args:
            data: a dataset name in ``db`` or ``(X, y)``; None continues the resumed run's dataset.
            epochs: epochs to run now (a resumed trainer continues its epoch count).
            checkpoint_every: save a checkpoint every N epochs and after the last one (0: never).
            validation: ``(X, y)`` or a dataset name, scored after every epoch.
            progress: ``progress(fraction, message)`` after every batch (server jobs).
            should_stop: polled before every batch; True raises ``Cancelled``.
            progress_bar: overrides the trainer's setting for this call.
        """
        epochs = _positive_int(epochs, "epochs", zero_ok=True)
        checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every", zero_ok=True)
        if checkpoint_every and self.db is None:
            raise error("invalid_argument", "checkpoints need a database")
        if data is None:
            if self.dataset is None:
                raise error("invalid_argument", "no data: pass a dataset name or (X, y)")
            data = self.dataset
        source = source_for(self.db, data)
        summary = await source.summary()
        self._prepare(summary)
        self.dataset = data if isinstance(data, str) else None
        val = await self._validation_set(validation)
        n_batches = -(-summary.n // self.batch_size)
        show = self.progress_bar if progress_bar is None else progress_bar
        bar = tqdm(total=epochs * n_batches, unit="batch", leave=False, file=sys.stderr,
                   disable=not (sys.stderr.isatty() if show is None else show))
        try:
            for e in range(epochs):
                metrics = await self._epoch(source, summary.n, e, epochs, n_batches, bar, progress, should_stop)
                if val is not None:
                    metrics.update(await asyncio.to_thread(self._validate, *val))
                self._record(metrics)
                log.info("run %s epoch %d: %s", self.run, self.epoch,
                         ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "epoch"))
                last = e == epochs - 1
                if checkpoint_every and (self.epoch % checkpoint_every == 0 or last):
                    await self.save_checkpoint()
                elif self.db is not None:
                    await self._save_run_record()
        finally:
            bar.close()
        return self.history_copy()

    def _prepare(self, summary: Any) -> None:
        model = self.model
        model.bind_features(summary.n_features)
        if not model.scaler.fitted:
            model.scaler.fit(summary.stats)
        model.fit_targets(summary)
        if model.params is None:
            model.params = model.init_params(self.rng)
        elif model.params.shape != (model.n_params,):
            raise error("invalid_parameters",
                        f"model params have shape {model.params.shape}, expected ({model.n_params},)")

    async def _epoch(self, source: DataSource, n: int, e: int, epochs: int, n_batches: int, bar: tqdm,
                     progress: ProgressFn | None, should_stop: Callable[[], bool] | None) -> dict[str, float]:
        start = time.perf_counter()
        loss_sum, grad_norms, outputs, targets = 0.0, [], [], []
        for b, rows in enumerate(epoch_batches(self.rng, n, self.batch_size)):
            if should_stop is not None and should_stop():
                raise error("cancelled",
                            f"training run {self.run} stopped in epoch {self.epoch + 1}; newest checkpoint: "
                            f"{self.checkpoints[-1] if self.checkpoints else 'none'}")
            X, y = await source.batch(rows)
            options = {"seed": int(self.rng.integers(2 ** 63))} if self.gradient == "spsa" else {}
            loss, gnorm, out, t = await asyncio.to_thread(self._train_step, X, y, options)
            self.step += 1
            loss_sum += loss * len(rows)
            grad_norms.append(gnorm)
            outputs.append(out)
            targets.append(t)
            bar.update(1)
            bar.set_postfix(epoch=f"{self.epoch + 1}", loss=f"{loss:.4f}", refresh=False)
            if progress is not None:
                done = e * n_batches + b + 1
                progress(done / max(1, epochs * n_batches), f"epoch {self.epoch + 1} batch {b + 1}/{n_batches} "
                                                            f"loss {loss:.4f}")
        seconds = time.perf_counter() - start
        quality = self.model.quality(np.concatenate(outputs), np.concatenate(targets))
        return {"epoch": float(self.epoch + 1), "loss": loss_sum / n, self.model.metric_name: quality,
                "grad_norm": float(np.mean(grad_norms)), "time": seconds, "samples_per_s": n / seconds}

    def _train_step(self, X: np.ndarray, y: np.ndarray, gradient_options: dict[str, Any]
                    ) -> tuple[float, float, np.ndarray, np.ndarray]:
        """One optimizer step on a batch; runs in a worker thread."""
        model = self.model
        model.runtime.gradient_options = gradient_options
        objective = BatchObjective(model, model.features(X), model.targets(y))
        if self.freeze:
            free = free_indices(model.parameter_groups, self.freeze, model.n_params)
            result = masked_step(self.optimizer, objective, model.params, free)
        else:
            result = self.optimizer.step(objective, model.params)
        model.params = result.params
        assert objective.outputs is not None
        return result.loss, float(np.linalg.norm(result.grad)), objective.outputs, objective.targets

    async def _validation_set(self, validation: str | tuple[Any, Any] | None
                              ) -> tuple[np.ndarray, np.ndarray] | None:
        if validation is None:
            return None
        X, y = await self._arrays(validation)
        return self.model.features(X), self.model.targets(y)

    async def _arrays(self, data: str | tuple[Any, Any]) -> tuple[np.ndarray, Any]:
        if isinstance(data, str):
            if self.db is None:
                raise error("invalid_argument", "a dataset name needs a database")
            return await self.db.load_dataset(data)
        if isinstance(data, tuple) and len(data) == 2:
            return check_features(data[0], self.model.n_features), data[1]
        raise error("invalid_argument", "expected a dataset name or an (X, y) tuple")

    def _validate(self, X: np.ndarray, t: np.ndarray) -> dict[str, float]:
        ev = self.model.evaluate_batch(X, t, self.model.params, grad=False)
        return {"val_loss": ev.loss, f"val_{self.model.metric_name}": self.model.quality(ev.outputs, t)}

    def _record(self, metrics: dict[str, float]) -> None:
        self.epoch += 1
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(float(value))

    def history_copy(self) -> History:
        return {k: list(v) for k, v in self.history.items()}

    # -- evaluation ------------------------------------------------------------------------
    async def evaluate(self, X: str | Any, y: Any = None) -> float:
        """Accuracy (classifiers) or R² (regression) on ``(X, y)`` or on a dataset by name."""
        if isinstance(X, str):
            X, y = await self._arrays(X)
        if y is None:
            raise error("invalid_labels", "evaluate needs labels y")
        return await asyncio.to_thread(self.model.score, X, y)

    # -- checkpoints ------------------------------------------------------------------------
    async def save_checkpoint(self) -> str:
        """Write a checkpoint of the current state; returns its id."""
        if self.db is None:
            raise error("invalid_argument", "checkpoints need a database")
        if self.model.params is None:
            raise error("invalid_argument", "nothing to checkpoint: the model has no parameters yet")
        config = self.config()
        state = self.model.state()
        if state.get("classes") is not None:
            state["classes"] = np.asarray(state["classes"]).tolist()
        doc = {"kind": CHECKPOINT, "run": self.run, "epoch": self.epoch, "step": self.step,
               "dataset": self.dataset, "seed": self.seed, "params": np.array(self.model.params, dtype=np.float64),
               "optimizer": self.optimizer.state_dict(), "rng": rng_state(self.rng),
               "model": {"config": self.model.config(), "state": state}, "metrics": self.history_copy(),
               "config": config, "config_hash": config_hash(config)}
        cid = await self.db.save_checkpoint(doc, id=checkpoint_id(self.run, self.epoch))
        self.checkpoints.append(cid)
        await self._save_run_record()
        log.info("run %s: checkpoint %s", self.run, cid)
        return cid

    async def _save_run_record(self) -> None:
        config = self.config()
        await self.db.save_checkpoint(
            {"kind": RUN_RECORD, "run": self.run, "epoch": self.epoch, "dataset": self.dataset,
             "metrics": self.history_copy(), "checkpoints": list(self.checkpoints),
             "latest_checkpoint": self.checkpoints[-1] if self.checkpoints else None,
             "config": config, "config_hash": config_hash(config)},
            id=run_record_id(self.run))

    async def resume(self, checkpoint: str) -> dict[str, Any]:
        """Restore parameters, optimizer state, RNG stream, epoch and history from a checkpoint.

        Raises ``checkpoint_mismatch`` if the checkpoint was written by a different
        model or optimizer configuration. Returns the checkpoint document.
        """
        if self.db is None:
            raise error("invalid_argument", "resume needs a database")
        doc = await self.db.load_checkpoint(checkpoint)
        saved_model = (doc.get("model") or {}).get("config") or {}
        if self.model.n_features is None and saved_model.get("n_features") is not None:
            self.model.bind_features(int(saved_model["n_features"]))
        check_checkpoint(doc, self.config())
        self.model.load_state(doc["model"]["state"])
        self.model.params = np.array(doc["params"], dtype=np.float64)
        self.optimizer.load_state_dict(doc["optimizer"])
        self.rng = restore_rng(doc["rng"])
        self.epoch, self.step = int(doc["epoch"]), int(doc["step"])
        self.history = {k: [float(v) for v in vals] for k, vals in (doc.get("metrics") or {}).items()}
        self.run = doc["run"]
        self.dataset = doc.get("dataset")
        self.checkpoints = [doc["id"]]
        log.info("run %s resumed from %s at epoch %d", self.run, doc["id"], self.epoch)
        return doc
