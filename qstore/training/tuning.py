"""Hyperparameter search on Optuna: ``await tune(db, dataset, space, n_trials, metric=..., study=...)``.

A *space* maps names to what Optuna samples: a list is a categorical choice, a map
``{"low": a, "high": b, "log": false}`` a float range (an int range when both ends are
ints), anything else a fixed value. ``lr``, ``optimizer`` and ``batch_size`` go to the
``Trainer``; every other name is a model config key (``layers``, ``entanglement``,
``n_qubits``, ``type``...) over the base ``model`` config::

    result = await tune(db, "iris", {"lr": {"low": 0.005, "high": 0.2, "log": True},
                                     "layers": [1, 2, 3], "entanglement": ["linear", "circular"]},
                        n_trials=30, metric="accuracy", study="iris-search")
    result.best_config, result.best_score, result.best_checkpoint, result.trials

- **Storage.** The study is an Optuna journal file in the data directory
  (``<db.path>/tuning/<study>.journal``, append-only, so a crash loses at most the
  trials in flight). Calling ``tune`` again with the same study continues it: finished
  and pruned trials count towards ``n_trials`` and are never rerun; trials a crash
  interrupted are marked failed and their configurations queued again. Run one ``tune``
  per study at a time.
- **Pruning.** Every trial trains epoch by epoch; its validation score after each epoch is
  reported to Optuna's median pruner, which stops trials worse than the median so far.
- **Parallelism.** ``n_jobs`` trials at a time, each epoch a call on ``executor``: any object
  with ``async run(fn, *args)``, such as ``qstore.federated.InProcessExecutor`` or
  ``RayExecutor`` (the trainer travels to the worker and back each epoch, so pruning
  decisions stay here); None runs epochs on threads.
- **Checkpoints.** Every trial, pruned or not, ends with a checkpoint in the database (run
  ``<study>-t<number>``); ``load_model(db, result.best_checkpoint)`` rebuilds the best model.
- **Validation.** A dataset name, or None to hold out a seeded quarter of the training data.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qstore.errors import QStoreError, error
from qstore_client.api import QStoreAPI

from .data import distinct_labels
from .registry import model_from_config
from .trainer import Trainer

log = logging.getLogger(__name__)

TRAINER_KEYS = ("lr", "optimizer", "batch_size")
_STUDY_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass
class TuneResult:
    """The best trial's configuration (model config and trainer settings), score and checkpoint; every trial."""

    best_config: dict[str, Any]
    best_score: float
    best_checkpoint: str | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    study: str = ""
    storage: str = ""


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise error("unavailable", "tune needs Optuna: pip install 'qstore[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _suggest(trial: Any, space: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, spec in space.items():
        if isinstance(spec, (list, tuple)):
            values[name] = trial.suggest_categorical(name, list(spec))
        elif isinstance(spec, dict):
            low, high, log_scale = spec["low"], spec["high"], bool(spec.get("log", False))
            if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
                values[name] = trial.suggest_int(name, low, high, log=log_scale)
            else:
                values[name] = trial.suggest_float(name, float(low), float(high), log=log_scale)
        else:
            values[name] = spec
    return values


def _check_space(space: Any) -> dict[str, Any]:
    if not isinstance(space, dict) or not space:
        raise error("invalid_argument", "space must be a non-empty map of names to choices or ranges")
    for name, spec in space.items():
        if not isinstance(name, str):
            raise error("invalid_argument", f"space names must be strings, got {name!r}")
        if isinstance(spec, (list, tuple)) and not spec:
            raise error("invalid_argument", f"space[{name!r}] has no choices")
        if isinstance(spec, dict):
            ok = set(spec) <= {"low", "high", "log"} and {"low", "high"} <= set(spec)
            nums = ok and all(isinstance(spec[k], (int, float)) and not isinstance(spec[k], bool)
                              for k in ("low", "high"))
            if not nums or spec["low"] > spec["high"] or (spec.get("log") and spec["low"] <= 0):
                raise error("invalid_argument", f"space[{name!r}] must be {{'low': a, 'high': b, 'log': bool}} "
                                                f"with a <= b (a > 0 for log), got {spec!r}")
    return dict(space)


def _split(values: dict[str, Any], base_model: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    trainer = {k: v for k, v in values.items() if k in TRAINER_KEYS}
    model = {**base_model, **{k: v for k, v in values.items() if k not in TRAINER_KEYS}}
    return model, trainer


def _train_epoch(trainer: Trainer, train: tuple[np.ndarray, np.ndarray], validation: tuple[np.ndarray, np.ndarray]
                 ) -> Trainer:
    """One epoch of a trial, on an executor's worker: the trainer goes there and comes back."""
    asyncio.run(trainer.fit(train, epochs=1, validation=validation, progress_bar=False))
    return trainer


class _Threads:
    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)


async def tune(db: QStoreAPI, dataset: str, space: dict[str, Any], n_trials: int, metric: str = "accuracy",
               study: str = "default", executor: Any = None, *, model: dict[str, Any] | None = None,
               epochs: int = 10, validation: str | None = None, n_jobs: int = 2, seed: int = 0,
               progress: Callable[[dict[str, Any]], None] | None = None) -> TuneResult:
    """Search ``space`` for the configuration with the best validation ``metric``; see the module docstring.

    Args:
        db: an embedded ``Database`` (the study file lives in its directory).
        dataset: training dataset name; validation: dataset name or None (hold out 25%).
        space: names -> choices / ranges / fixed values.
        n_trials: finished (complete or pruned) trials the study should hold when done.
        metric: ``accuracy`` | ``r2`` (maximised) or ``loss`` (validation loss, minimised).
        study: study name (letters, digits, ``_.-``); the same name resumes it.
        executor: where epochs run (``async run(fn, *args)``); None: threads.
        model: base model config (default a VQC with one qubit per feature and 2 layers).
        epochs: epochs per trial; n_jobs: trials in flight at once; seed: sampler and trainer seeds.
        progress: called with each finished trial's record.
    """
    optuna = _optuna()
    space = _check_space(space)
    if metric not in ("accuracy", "r2", "loss"):
        raise error("invalid_argument", f"metric must be accuracy, r2 or loss, got {metric!r}")
    if not isinstance(study, str) or not _STUDY_NAME.match(study):
        raise error("invalid_name", f"study must be 1-100 letters, digits, '_', '.' or '-', got {study!r}")
    for name, value in (("n_trials", n_trials), ("epochs", epochs), ("n_jobs", n_jobs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise error("invalid_argument", f"{name} must be a positive integer, got {value!r}")
    path = getattr(db, "path", None)
    if not isinstance(path, str):
        raise error("invalid_argument", "tune keeps its study in the data directory: pass an embedded Database")

    X, y = await db.load_dataset(dataset)
    if validation is None:
        order = np.random.default_rng(seed).permutation(len(X))
        cut = max(1, len(X) // 4)
        train, held_out = (X[order[cut:]], y[order[cut:]]), (X[order[:cut]], y[order[:cut]])
    else:
        train, held_out = (X, y), await db.load_dataset(validation)
    if model is not None:
        base = dict(model)
    elif metric == "r2":
        base = {"type": "vqc_regressor", "n_qubits": int(X.shape[1]), "layers": 2}
    else:
        base = {"type": "vqc", "n_qubits": int(X.shape[1]), "layers": 2, "n_classes": max(2, len(distinct_labels(y)))}
    direction = "minimize" if metric == "loss" else "maximize"
    key = f"val_{metric}"

    # Every configuration of the space must build, or nothing starts.
    first = {k: (v[0] if isinstance(v, (list, tuple)) else v["low"] if isinstance(v, dict) else v)
             for k, v in space.items()}
    cfg, kw = _split(first, base)
    Trainer(None, model_from_config(cfg), progress_bar=False, **kw)

    os.makedirs(os.path.join(path, "tuning"), exist_ok=True)
    storage_path = os.path.join(path, "tuning", f"{study}.journal")
    # A crash can leave the journal's write lock behind; a write holds it for milliseconds (an fsync),
    # so a lock older than 3 s is stale. Optuna's default (30 s) would stall every resume after a crash.
    journal = optuna.storages.journal
    lock = journal.JournalFileSymlinkLock(storage_path, grace_period=3)
    storage = optuna.storages.JournalStorage(journal.JournalFileBackend(storage_path, lock_obj=lock))
    s = optuna.create_study(study_name=study, storage=storage, direction=direction, load_if_exists=True,
                            sampler=optuna.samplers.TPESampler(seed=seed),
                            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    states = optuna.trial.TrialState
    for t in s.get_trials(deepcopy=False, states=(states.RUNNING, states.WAITING)):
        if t.state == states.RUNNING:            # a crash interrupted it: fail it, queue its config again
            s.tell(t.number, state=states.FAIL)
            s.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
            log.info("study %s: trial %d was interrupted; queued again", study, t.number)
    done = len(s.get_trials(deepcopy=False, states=(states.COMPLETE, states.PRUNED)))
    remaining = max(0, n_trials - done)
    runner = executor if executor is not None else _Threads()
    asking = asyncio.Lock()

    async def run_trial() -> None:
        async with asking:
            trial = s.ask()
        values = _suggest(trial, space)
        model_cfg, trainer_kw = _split(values, base)
        state, score = states.COMPLETE, float("nan")
        trainer: Trainer | None = None
        try:
            trainer = Trainer(None, model_from_config(model_cfg), seed=seed + trial.number,
                              run=f"{study}-t{trial.number:04d}", progress_bar=False, **trainer_kw)
            for epoch in range(epochs):
                trainer = await runner.run(_train_epoch, trainer, train, held_out)
                score = trainer.history[key][-1]
                trial.report(score, epoch)
                if trial.should_prune():
                    state = states.PRUNED
                    break
        except QStoreError as exc:
            log.warning("study %s trial %d failed: %s", study, trial.number, exc)
            trial.set_user_attr("error", str(exc))
            state = states.FAIL
        if trainer is not None and trainer.model.params is not None:
            trainer.db = db
            trial.set_user_attr("checkpoint", await trainer.save_checkpoint())
            trainer.db = None
        trial.set_user_attr("config", {"model": model_cfg, **trainer_kw})
        async with asking:
            if state == states.COMPLETE:
                s.tell(trial, score)
            else:
                s.tell(trial, state=state)
        if progress is not None:
            progress(_record(s.trials[trial.number]))

    tickets = iter(range(remaining))

    async def worker() -> None:
        for _ in tickets:
            await run_trial()

    await asyncio.gather(*(worker() for _ in range(min(n_jobs, remaining))))
    return _result(s, study, storage_path)


def _record(t: Any) -> dict[str, Any]:
    return {"number": t.number, "state": t.state.name.lower(), "params": dict(t.params), "score": t.value,
            "epochs": len(t.intermediate_values), "checkpoint": t.user_attrs.get("checkpoint"),
            "config": t.user_attrs.get("config"), "error": t.user_attrs.get("error")}


def _result(s: Any, study: str, storage_path: str) -> TuneResult:
    trials = [_record(t) for t in s.trials]
    complete = [t for t in trials if t["state"] == "complete"]
    if not complete:
        return TuneResult({}, float("nan"), None, trials, study, storage_path)
    best = _record(s.best_trial)
    return TuneResult(best["config"], float(best["score"]), best["checkpoint"], trials, study, storage_path)
