"""The participant side of federated rounds as server jobs.

* ``federated_fit``: params are a ``RoundTask`` (global parameters, model config and
  fitted state, local dataset name, local training settings); the job trains on the
  named local dataset with the training engine and returns an ``Update``: the
  parameter delta, the row count and local metrics. Never rows.
* ``federated_summary``: params ``{"dataset"}``; returns the dataset's row count,
  per-column min / max / mean / std and distinct labels, so a coordinator can fit
  feature scaling and classes as centralised training on the union would.

The logic lives in ``qstore.federated`` (testable in-process); these are thin wrappers.
Training runs in a thread the job can abandon when cancelled; only the dataset read goes to the loop.
The training engine loads when the first federated job is checked, not when the server starts.
"""
from __future__ import annotations

from typing import Any

from qstore.federated.remote import FIT_KIND, SUMMARY_KIND
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
    update = ctx.run_abandonable(train_local, task, X, y, ctx.progress, lambda: ctx.cancelled)
    return update.to_wire()


def check_summary(params: dict[str, Any]) -> None:
    unknown = set(params) - {"dataset"}
    if unknown:
        raise error("unknown_field", f"{SUMMARY_KIND}: unknown param(s) {sorted(unknown)}")
    if not isinstance(params.get("dataset"), str):
        raise error("missing_field", f"{SUMMARY_KIND}: dataset (a dataset name) is required")


def federated_summary(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    from qstore.federated.messages import Summary

    X, y = ctx.call(ctx.db.load_dataset(params["dataset"]))
    return Summary.of(X, y).to_wire()


def federated_kinds() -> tuple[JobKind, ...]:
    return (JobKind(FIT_KIND, federated_fit, check_fit), JobKind(SUMMARY_KIND, federated_summary, check_summary))
