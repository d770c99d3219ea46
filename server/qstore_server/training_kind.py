"""The ``train`` job kind: a Trainer on the server's database, with progress and cancellation.

Params (all msgpack/JSON values)::

    dataset           dataset name (required unless ``resume``)
    model             model config, e.g. {"type": "vqc", "n_qubits": 4, "layers": 3, "n_classes": 2,
                      "encoding": "angle", "entanglement": "linear", "reupload": false}
                      (``type`` vqc | vqc_regressor | hybrid | circuit; required unless ``resume``)
    optimizer         adam | sgd | qng | tunneling (default adam)
    optimizer_options extra optimizer arguments, e.g. {"lam": 0.01, "metric": "block"}
    lr                step size (default 0.05)
    epochs            epochs to run (default 10)
    batch_size        default 32
    seed              default 0
    checkpoint_every  epochs between checkpoints, and always after the last (default 1)
    backend           statevector | cirq | cirq-density-matrix (default statevector)
    gradient          adjoint | parameter-shift | finite-diff | spsa (default adjoint)
    validation        dataset name scored after every epoch (optional)
    run               run name (optional)
    resume            checkpoint id to continue from (model/optimizer come from it)

The trainer runs on the server loop through ``ctx.call``; every batch's
simulation runs in a worker thread, so the loop keeps serving. Cancelling the
job stops training before the next batch; checkpoints already written stay.
The result: ``{"run", "epochs", "history", "checkpoints", "latest_checkpoint"}``.

The training engine (cirq, numba, scipy: seconds to import) loads when the first train job
is checked, not when the server starts.
"""
from __future__ import annotations

from typing import Any

from qstore_client.errors import error

from .jobs import JobContext, JobKind

DEFAULTS: dict[str, Any] = {"optimizer": "adam", "optimizer_options": None, "lr": 0.05, "epochs": 10,
                            "batch_size": 32, "seed": 0, "checkpoint_every": 1, "backend": "statevector",
                            "gradient": "adjoint", "validation": None, "run": None, "resume": None,
                            "dataset": None, "model": None}
_INTS = ("epochs", "batch_size", "seed", "checkpoint_every")
_TEXT = ("optimizer", "backend", "gradient", "validation", "run", "resume", "dataset")


def _params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = set(params) - set(DEFAULTS)
    if unknown:
        raise error("unknown_field", f"train: unknown param(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    return {**DEFAULTS, **params}


def check_train(params: dict[str, Any]) -> None:
    """Refuse bad params when the job is started (cheap: nothing is simulated or read)."""
    from qstore.circuits import backend_names, gradient_method
    from qstore.training.registry import get_optimizer, model_from_config

    p = _params(params)
    for key in _INTS:
        least = 1 if key == "batch_size" else 0
        if isinstance(p[key], bool) or not isinstance(p[key], int) or p[key] < least:
            raise error("invalid_argument", f"train: {key} must be an integer >= {least}")
    for key in _TEXT:
        if p[key] is not None and not isinstance(p[key], str):
            raise error("invalid_argument", f"train: {key} must be a string")
    if not isinstance(p["lr"], (int, float)) or isinstance(p["lr"], bool):
        raise error("invalid_argument", "train: lr must be a number")
    if p["resume"] is None:
        if p["dataset"] is None:
            raise error("missing_field", "train: dataset is required (or resume a checkpoint)")
        if not isinstance(p["model"], dict):
            raise error("missing_field", "train: model (a model config map) is required (or resume a checkpoint)")
        model_from_config(p["model"])
        options = p["optimizer_options"] or {}
        if not isinstance(options, dict):
            raise error("invalid_argument", "train: optimizer_options must be a map")
        get_optimizer(p["optimizer"], p["lr"], **options)
    if p["backend"] not in backend_names():
        raise error("unknown_backend", f"train: unknown backend {p['backend']!r}; choose one of {backend_names()}")
    gradient_method(p["gradient"])


def run_train(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from qstore.training.registry import model_from_config
    from qstore.training.trainer import Trainer

    p = _params(params)
    if p["resume"] is not None:
        trainer = ctx.call(Trainer.from_checkpoint(ctx.db, p["resume"], backend=p["backend"], progress_bar=False))
    else:
        options = dict(p["optimizer_options"] or {})
        trainer = Trainer(ctx.db, model_from_config(p["model"]), optimizer=p["optimizer"], lr=p["lr"],
                          backend=p["backend"], gradient=p["gradient"], batch_size=p["batch_size"], seed=p["seed"],
                          run=p["run"], optimizer_options=options, progress_bar=False)
    ctx.progress(0.0, f"run {trainer.run}: starting")
    history = ctx.call(trainer.fit(p["dataset"], epochs=p["epochs"], checkpoint_every=p["checkpoint_every"],
                                   validation=p["validation"], progress=ctx.progress,
                                   should_stop=lambda: ctx.cancelled))
    return {"run": trainer.run, "epochs": trainer.epoch, "history": history, "checkpoints": trainer.checkpoints,
            "latest_checkpoint": trainer.checkpoints[-1] if trainer.checkpoints else None}


def train_kind() -> JobKind:
    return JobKind("train", run_train, check_train)
