"""The job kinds a server offers. Training and federated kinds are added to `builtin_kinds`."""
from __future__ import annotations

from typing import Any

from qstore_client.errors import error

from .federated_kind import federated_kinds
from .jobs import JobContext, JobKind
from .training_kind import train_kind


def check_copy(params: dict[str, Any]) -> None:
    unknown = set(params) - {"source", "target", "filter", "store"}
    if unknown:
        raise error("unknown_field", f"copy_collection: unknown param(s) {sorted(unknown)}")
    for key in ("source", "target"):
        if not isinstance(params.get(key), str):
            raise error("missing_field", f"copy_collection: {key} (a collection name) is required")
    if params.get("filter") is not None and not isinstance(params["filter"], dict):
        raise error("invalid_filter", "copy_collection: filter must be a map")
    if params.get("store") not in (None, "lmdb", "qdrant"):
        raise error("invalid_store", "copy_collection: store must be 'lmdb' or 'qdrant'")


def copy_collection(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Copy the live records of `source` (optionally filtered) into a new collection `target`,
    in `store` (default: the server's), exactly: branches, amplitudes, versions, metadata,
    expiry and groups (qstore.stores.copy). A cancelled or interrupted copy resumes when
    started again with the same source and target."""
    from qstore.stores.copy import copy_collection as copy

    def progress(copied: int, total: int) -> None:
        ctx.progress(copied / max(total, 1), f"{copied}/{total} records")

    result = ctx.call(copy(ctx.db, params["source"], params["target"], store=params.get("store"),
                           filter=params.get("filter"), progress=progress, cancelled=lambda: ctx.cancelled))
    ctx.check_cancelled()
    ctx.progress(1.0, f"{result['copied']} records")
    return {k: result[k] for k in ("source", "target", "store", "copied")}


def builtin_kinds() -> tuple[JobKind, ...]:
    return (JobKind("copy_collection", copy_collection, check_copy), train_kind(), *federated_kinds())
