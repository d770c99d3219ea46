"""Checkpoint and run-record documents for the database's checkpoint table.

A **checkpoint** (id ``{run}-e{epoch:05d}``) holds everything an exact resume
needs::

    {"kind": "checkpoint", "run", "epoch", "step", "dataset",
     "params": float64 array, "optimizer": {"name", "hyperparameters", "state"},
     "rng": exact numpy bit_generator state (JSON text: PCG64 needs 128-bit ints),
     "model": {"config", "state"}, "metrics": per-epoch history so far,
     "config": training config, "config_hash": sha256 of that config}

A **run record** (id ``{run}-metrics``, ``"kind": "run"``) is rewritten after
every epoch with the history so far, the newest checkpoint id and the config:
per-epoch metrics are in the database even between checkpoints. Both carry
``"run"``, so ``db.list_checkpoints(run=...)`` lists a run's documents (the
``metrics`` field is kept in those summaries).
"""
from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from qstore_client.api import QStoreAPI
from qstore_client.errors import error

from .registry import model_from_config

if TYPE_CHECKING:
    from .models import Model

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
RUN_RECORD = "run"


def config_hash(config: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a training config."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=_plain)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not part of a config")


def checkpoint_id(run: str, epoch: int) -> str:
    return f"{run}-e{epoch:05d}"


def run_record_id(run: str) -> str:
    return f"{run}-metrics"


def check_checkpoint(doc: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse a checkpoint whose training config differs from this trainer's (``checkpoint_mismatch``)."""
    if doc.get("kind") != CHECKPOINT:
        raise error("checkpoint_mismatch",
                    f"{doc.get('id')!r} is a {doc.get('kind')!r} document, not a checkpoint")
    if doc.get("config_hash") == config_hash(config):
        return
    theirs = doc.get("config") or {}
    diffs = sorted(_differences(theirs, config))
    raise error("checkpoint_mismatch", f"checkpoint {doc.get('id')!r} was written by a different training "
                                       f"setup; differs in {', '.join(diffs) or 'config hash'}")


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in set(a) | set(b):
            out += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if _plain_equal(a, b) else [f"{prefix.rstrip('.')} ({a!r} vs {b!r})"]


def _plain_equal(a: Any, b: Any) -> bool:
    norm = (lambda v: list(v) if isinstance(v, tuple) else v)
    return norm(a) == norm(b)


async def load_model(db: QStoreAPI, checkpoint: str) -> Model:
    """The trained model a checkpoint holds: its config, fitted state (scaling, classes) and parameters."""
    doc = await db.load_checkpoint(checkpoint)
    if doc.get("kind") != CHECKPOINT:
        raise error("checkpoint_mismatch", f"{checkpoint!r} is a {doc.get('kind')!r} document, not a checkpoint")
    model = model_from_config(doc["model"]["config"])
    model.load_state(doc["model"]["state"])
    params = np.array(doc["params"], dtype=np.float64)
    if params.shape != (model.n_params,):
        raise error("checkpoint_mismatch", f"checkpoint {checkpoint!r} has {params.shape} params, "
                                           f"its model takes ({model.n_params},)")
    model.params = params
    return model
