"""A collection as JSON lines, and back: everything a record has survives the round trip.

Line 1 describes the collection: ``{"format": 2, "collection": {name, dim, metric, index,
coherence_time, on_decohere}}``. Then one line per record:
``{"id", "vector", "metadata", "branches": [{"vector", "context", "amplitude": [re, im]}],
"coherence_remaining": seconds | null}``, and one per entanglement group:
``{"group", "members", "strength"}``. Files of plain ``{"id", "vector", "metadata"?}`` lines
(no header) import too. Versions start again at 1; expiry is kept as the time remaining,
so a record that had 60 s left at export has 60 s left after import.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import numpy as np

from qstore.collection import Collection
from qstore.database import Database
from qstore.errors import InvalidArgument, NotFound

FORMAT = 2
BATCH = 1000
Progress = Callable[[int], None]


async def export_jsonl(col: Collection, out: IO[str], progress: Progress | None = None) -> int:
    """Write the collection to ``out``; returns the number of records written."""
    now = col._now()
    settings = {k: v for k, v in col.config.items() if k not in ("cid", "regions")}
    out.write(json.dumps({"format": FORMAT, "collection": settings}) + "\n")
    n, cursor = 0, None
    while True:
        page = await col.scroll(limit=BATCH, cursor=cursor)
        for r in page.records:
            out.write(json.dumps({
                "id": r.id, "vector": r.vector.tolist(), "metadata": r.metadata,
                "branches": [{"vector": b.vector.tolist(), "context": b.context,
                              "amplitude": [b.amplitude.real, b.amplitude.imag]} for b in r.branches],
                "coherence_remaining": None if r.expires_at is None else r.expires_at - now}) + "\n")
        n += len(page.records)
        if progress:
            progress(len(page.records))
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    for name, g in sorted((await groups(col)).items()):
        out.write(json.dumps({"group": name, "members": g["members"], "strength": g["strength"]}) + "\n")
    return n


async def import_jsonl(db: Database, lines: Iterable[str], name: str | None = None,
                       defaults: dict[str, Any] | None = None, progress: Progress | None = None) -> Collection:
    """Load an export into the collection ``name`` (default: the exported name), creating it
    from the file's description, or from ``defaults`` (metric, index) for header-less files."""
    rows = _objects(lines)
    first = next(rows, None)
    if first is None:
        raise InvalidArgument("the file holds no rows", "invalid_argument")
    header = first.get("collection") if "collection" in first else None
    if header is not None:
        first = None
    col: Collection | None = None
    plain: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []

    async def ensure(dim: int) -> Collection:
        nonlocal col
        if col is None:
            target = name or (header or {}).get("name")
            if not target:
                raise InvalidArgument("give the collection a name", "invalid_name")
            try:
                col = await db.collection(target)
            except NotFound:
                spec = header or {"dim": dim, **(defaults or {})}
                col = await db.create_collection(target, dim=spec["dim"], metric=spec.get("metric", "cosine"),
                                                 index=spec.get("index"), coherence_time=spec.get("coherence_time"),
                                                 on_decohere=spec.get("on_decohere", "delete"))
        return col

    async def flush() -> None:
        if plain:
            c = await ensure(len(plain[0]["vector"]))
            await c.upsert([r["id"] for r in plain], np.array([r["vector"] for r in plain], np.float32),
                           [r.get("metadata") or {} for r in plain])
            if progress:
                progress(len(plain))
            plain.clear()

    if header is not None:
        await ensure(header["dim"])
    for obj in _chain(first, rows):
        if "group" in obj:
            groups.append(obj)
            continue
        branches = obj.get("branches")
        remaining = obj.get("coherence_remaining")
        if remaining is None and not _superposed(branches):
            plain.append(obj)
            if len(plain) == BATCH:
                await flush()
            continue
        c = await ensure(len(obj["vector"]))
        if branches is None:
            await c.upsert([obj["id"]], np.array([obj["vector"]], np.float32), [obj.get("metadata") or {}],
                           coherence_time=remaining)
        else:
            await c.superpose(obj["id"], [(np.array(b["vector"], np.float32), b["context"],
                                           complex(*b["amplitude"])) for b in branches],
                              metadata=obj.get("metadata") or {}, coherence_time=remaining)
        if progress:
            progress(1)
    await flush()
    if col is None:
        raise InvalidArgument("the file holds no records", "invalid_argument")
    for g in groups:
        await col.entangle(g["group"], g["members"], g["strength"])
    return col


async def groups(col: Collection) -> dict[str, dict[str, Any]]:
    """Every entanglement group of the collection: name -> {"members": [ids], "strength": ρ}."""
    return await col.store.groups()


def _superposed(branches: list[dict[str, Any]] | None) -> bool:
    """More than a plain vector: several branches, a context, or an amplitude other than 1."""
    if not branches:
        return False
    return len(branches) > 1 or branches[0]["context"] is not None or list(branches[0]["amplitude"]) != [1.0, 0.0]


def _chain(first: dict[str, Any] | None, rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    if first is not None:
        yield first
    yield from rest


def _objects(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise InvalidArgument(f"line {n}: not JSON ({exc})", "malformed_body") from None
        if not isinstance(obj, dict) or not ({"id", "group", "collection"} & obj.keys()):
            raise InvalidArgument(f"line {n}: expected an object with an id, a group or a collection",
                                  "malformed_body")
        yield obj
