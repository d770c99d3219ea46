"""The participant side of federated rounds as server jobs.

* ``federated_fit``: params are a ``RoundTask`` (global parameters, model config and
  fitted state, local dataset name, local training settings); the job trains on the
  named local dataset with the training engine and returns an ``Update``: the
  parameter delta, the row count and local metrics. Never rows.
* ``federated_secagg``: one stage of secure aggregation (``qstore.federated.secagg``):
  ``train`` (params ``{"stage", "task", "secagg"}``) trains like ``federated_fit`` but keeps
  the update in this process and answers public keys only; ``share_keys``, ``masked_input``
  and ``unmask`` continue that session. Sessions live in this server process's memory.
* ``federated_summary``: params ``{"dataset", "counts"?}``; returns the dataset's row count,
  per-column min / max / mean / std and distinct labels, so a coordinator can fit
  feature scaling and classes as centralised training on the union would.

The logic lives in ``qstore.federated`` (testable in-process); these are thin wrappers.
Training runs in a thread the job can abandon when cancelled; only the dataset read goes to the loop.
The training engine loads when the first federated job is checked, not when the server starts.
"""
from __future__ import annotations

import threading
from typing import Any

from qstore.federated.remote import FIT_KIND, SECURE_KIND, SUMMARY_KIND
from qstore_client.errors import error

from .jobs import JobContext, JobKind


def check_fit(params: dict[str, Any]) -> None:
    """A task whose model or optimizer cannot be built fails at start, not later in the job."""
    from qstore.federated.messages import RoundTask
    from qstore.federated.participant import build_model
    from qstore.training.registry import get_optimizer

    task = RoundTask.from_wire(params)
    build_model(task)
    get_optimizer(task.optimizer, task.lr)


def federated_fit(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from qstore.federated.messages import RoundTask
    from qstore.federated.participant import train_local

    task = RoundTask.from_wire(params)
    X, y = ctx.call(ctx.db.load_dataset(task.dataset))
    ctx.check_cancelled()
    update = ctx.run_abandonable(train_local, task, X, y, ctx.progress, lambda: ctx.cancelled, _state().feedback)
    return update.to_wire()


class _ParticipantState:
    """What this node remembers between rounds: secure-aggregation sessions, error-feedback residuals."""

    def __init__(self) -> None:
        from qstore.federated.compression import ErrorFeedback
        from qstore.federated.secagg import SessionStore

        self.sessions = SessionStore()
        self.feedback = ErrorFeedback()


_participant: _ParticipantState | None = None
_participant_lock = threading.Lock()


def _state() -> _ParticipantState:
    """This process's participant state, made on first use (the engine loads lazily)."""
    global _participant
    with _participant_lock:
        if _participant is None:
            _participant = _ParticipantState()
        return _participant


def check_secure(params: dict[str, Any]) -> None:
    stage = params.get("stage")
    if stage == "train":
        unknown = set(params) - {"stage", "task", "secagg"}
        if unknown:
            raise error("unknown_field", f"{SECURE_KIND}: unknown param(s) {sorted(unknown)}")
        check_fit(params.get("task"))  # type: ignore[arg-type]
    elif stage not in ("share_keys", "masked_input", "unmask"):
        raise error("invalid_argument", f"{SECURE_KIND}: unknown stage {stage!r}")


def federated_secure(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from qstore.federated.messages import RoundTask
    from qstore.federated.participant import train_local
    from qstore.federated.secagg import client_for

    if params["stage"] != "train":
        return _state().sessions.step(params)
    task = RoundTask.from_wire(params["task"])
    X, y = ctx.call(ctx.db.load_dataset(task.dataset))
    ctx.check_cancelled()
    update = ctx.run_abandonable(train_local, task, X, y, ctx.progress, lambda: ctx.cancelled)
    return _state().sessions.start(client_for(params["secagg"], update))


def check_summary(params: dict[str, Any]) -> None:
    unknown = set(params) - {"dataset", "counts"}
    if unknown:
        raise error("unknown_field", f"{SUMMARY_KIND}: unknown param(s) {sorted(unknown)}")
    if not isinstance(params.get("counts", False), bool):
        raise error("invalid_argument", f"{SUMMARY_KIND}: counts must be true or false")
    if not isinstance(params.get("dataset"), str):
        raise error("missing_field", f"{SUMMARY_KIND}: dataset (a dataset name) is required")


def federated_summary(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from qstore.federated.messages import Summary

    X, y = ctx.call(ctx.db.load_dataset(params["dataset"]))
    summary = Summary.of(X, y)
    if not params.get("counts", False):  # rows per label only for a coordinator that selects by them
        summary.counts = None
    return summary.to_wire()


def federated_kinds() -> tuple[JobKind, ...]:
    return (JobKind(FIT_KIND, federated_fit, check_fit), JobKind(SUMMARY_KIND, federated_summary, check_summary),
            JobKind(SECURE_KIND, federated_secure, check_secure))
