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
from .rng_state import restore_rng

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


# A checkpoint's fields and the types a resume may rely on. Stored documents can be written by
# any caller with a write key, so each one is checked before it is used (``invalid_checkpoint``).
_STR, _INT, _NUM, _MAP = (str,), (int,), (int, float), (dict,)
CHECKPOINT_FIELDS: dict[str, tuple[type, ...]] = {
    "run": _STR, "epoch": _INT, "step": _INT, "rng": _STR, "optimizer": _MAP, "model": _MAP,
    "config": _MAP, "config_hash": _STR}


def validate_checkpoint(doc: Any) -> None:
    """Check a checkpoint document's shape against the allow-list above, before any of it is used."""
    if not isinstance(doc, dict):
        raise error("invalid_checkpoint", "a checkpoint is a map")
    if doc.get("kind") != CHECKPOINT:
        raise error("checkpoint_mismatch",
                    f"{doc.get('id')!r} is a {doc.get('kind')!r} document, not a checkpoint")
    for name, types in CHECKPOINT_FIELDS.items():
        value = doc.get(name)
        if isinstance(value, bool) or not isinstance(value, types):
            raise error("invalid_checkpoint", f"checkpoint {doc.get('id')!r}: {name} must be a "
                                              f"{' or '.join(t.__name__ for t in types)}")
    restore_rng(doc["rng"])  # the bit generator's name is checked against an allow-list there
    if doc["epoch"] < 0 or doc["step"] < 0:
        raise error("invalid_checkpoint", "checkpoint: epoch and step are >= 0")
    opt, model, config = doc["optimizer"], doc["model"], doc["config"]
    if not (isinstance(opt.get("name"), str) and isinstance(opt.get("hyperparameters"), dict)
            and isinstance(opt["hyperparameters"].get("lr"), _NUM) and isinstance(opt.get("state"), dict)):
        raise error("invalid_checkpoint", "checkpoint: optimizer is {name, hyperparameters (with lr), state}")
    if not (isinstance(model.get("config"), dict) and isinstance(model.get("state"), dict)):
        raise error("invalid_checkpoint", "checkpoint: model is {config, state}")
    if not (isinstance(config.get("gradient"), str) and isinstance(config.get("batch_size"), int)):
        raise error("invalid_checkpoint", "checkpoint: config has gradient and batch_size")
    params = np.asarray(doc.get("params"))
    if params.ndim != 1 or params.dtype.kind not in "iuf" or not np.isfinite(params).all():
        raise error("invalid_checkpoint", "checkpoint: params is a 1-D array of finite numbers")
    metrics = doc.get("metrics") or {}
    if not isinstance(metrics, dict) or not all(
            isinstance(v, list) and all(isinstance(x, _NUM) for x in v) for v in metrics.values()):
        raise error("invalid_checkpoint", "checkpoint: metrics maps names to lists of numbers")
    if doc.get("dataset") is not None and not isinstance(doc["dataset"], str):
        raise error("invalid_checkpoint", "checkpoint: dataset is a name")


def check_checkpoint(doc: dict[str, Any], config: dict[str, Any]) -> None:
    """Refuse a malformed checkpoint (``invalid_checkpoint``) or one whose training config differs
    from this trainer's (``checkpoint_mismatch``)."""
    validate_checkpoint(doc)
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
    def norm(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v
    return norm(a) == norm(b)


async def load_model(db: QStoreAPI, checkpoint: str) -> Model:
    """The trained model a checkpoint holds: its config, fitted state (scaling, classes) and parameters."""
    doc = await db.load_checkpoint(checkpoint)
    validate_checkpoint(doc)
    model = model_from_config(doc["model"]["config"])
    model.load_state(doc["model"]["state"])
    params = np.array(doc["params"], dtype=np.float64)
    if params.shape != (model.n_params,):
        raise error("checkpoint_mismatch", f"checkpoint {checkpoint!r} has {params.shape} params, "
                                           f"its model takes ({model.n_params},)")
    model.params = params
    return model
