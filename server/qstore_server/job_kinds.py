"""The job kinds a server offers. Training and federated kinds are added to `builtin_kinds`."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from qstore_client.errors import error

from .federated_kind import federated_kinds
from .jobs import JobContext, JobKind
from .training_kind import train_kind

COPY_PAGE = 500


def check_copy(params: dict[str, Any]) -> None:
    unknown = set(params) - {"source", "target", "filter"}
    if unknown:
        raise error("unknown_field", f"copy_collection: unknown param(s) {sorted(unknown)}")
    for key in ("source", "target"):
        if not isinstance(params.get(key), str):
            raise error("missing_field", f"copy_collection: {key} (a collection name) is required")
    if params.get("filter") is not None and not isinstance(params["filter"], dict):
        raise error("invalid_filter", "copy_collection: filter must be a map")


def copy_collection(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Copy the live records of `source` (optionally filtered) into a new collection `target`
    with the same dimension, metric and index: a snapshot to experiment on (e.g. before
    collapsing measurements) without touching the original. Branches, metadata and the
    remaining coherence time travel with each record."""
    src = ctx.call(ctx.db.collection(params["source"]))
    info = ctx.call(src.info())
    dst = ctx.call(ctx.db.create_collection(params["target"], src.dim, metric=src.metric, index=info.get("index"),
                                            coherence_time=info.get("coherence_time"),
                                            on_decohere=info.get("on_decohere", "delete")))
    total = ctx.call(src.count())
    copied, cursor = 0, None
    while True:
        ctx.check_cancelled()
        page = ctx.call(src.scroll(limit=COPY_PAGE, cursor=cursor, filter=params.get("filter")))
        now = time.time()
        plain = [r for r in page.records if len(r.branches) <= 1 and r.expires_at is None]
        if plain:
            ctx.call(dst.upsert([r.id for r in plain], np.stack([r.vector for r in plain]),
                                metadata=[r.metadata for r in plain]))
        for rec in page.records:
            if len(rec.branches) <= 1 and rec.expires_at is None:
                continue
            remaining = None if rec.expires_at is None else rec.expires_at - now
            if remaining is not None and remaining <= 0:
                continue  # decohered between the scroll and now
            branches = [(b.vector, b.context, b.amplitude) for b in rec.branches] or [(rec.vector, None, 1.0)]
            ctx.call(dst.superpose(rec.id, branches, metadata=rec.metadata, coherence_time=remaining))
        copied += len(page.records)
        ctx.progress(copied / max(total, 1), f"{copied}/{total} records")
        if page.next_cursor is None:
            return {"source": params["source"], "target": params["target"], "copied": copied}
        cursor = page.next_cursor


def builtin_kinds() -> tuple[JobKind, ...]:
    return (JobKind("copy_collection", copy_collection, check_copy), train_kind(), *federated_kinds())
