"""Entanglement groups: members move together on update and collapse together on measure.

Layout in the ``groups`` table (all keys start with the collection id, so a drop removes them):
    cid + b"G" + group  -> {"members": [ids], "strength": ρ}
    cid + b"M" + id     -> [group, ...]       the groups a record belongs to
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qstore import records, validation
from qstore.errors import InvalidArgument, NotFound
from qstore.storage import WriteContext, codec

if TYPE_CHECKING:
    from qstore.collection import Collection


def _gkey(col: Collection, group: str) -> bytes:
    return codec.u32(col.cid) + b"G" + group.encode()


def _mkey(col: Collection, rid: str) -> bytes:
    return codec.u32(col.cid) + b"M" + rid.encode()


def _groups_of(ctx: WriteContext, col: Collection, rid: str) -> list[str]:
    raw = ctx.get("groups", _mkey(col, rid))
    return codec.unpack(raw) if raw else []


def _set_groups_of(ctx: WriteContext, col: Collection, rid: str, groups: list[str]) -> None:
    if groups:
        ctx.put("groups", _mkey(col, rid), codec.pack(sorted(set(groups))))
    else:
        ctx.delete("groups", _mkey(col, rid))


def partners(ctx: WriteContext, col: Collection, rid: str) -> list[tuple[str, float]]:
    """(partner id, ρ) for every group ``rid`` is in; a partner in two groups appears twice."""
    out = []
    for group in _groups_of(ctx, col, rid):
        g = codec.unpack(ctx.get("groups", _gkey(col, group)))
        out.extend((m, g["strength"]) for m in g["members"] if m != rid)
    return out


def leave_groups(ctx: WriteContext, col: Collection, rid: str) -> None:
    """Called by the write path when a record is deleted."""
    for group in _groups_of(ctx, col, rid):
        g = codec.unpack(ctx.get("groups", _gkey(col, group)))
        members = [m for m in g["members"] if m != rid]
        if len(members) >= 2:
            ctx.put("groups", _gkey(col, group), codec.pack({**g, "members": members}))
        else:  # a group of one entangles nothing
            ctx.delete("groups", _gkey(col, group))
            for m in members:
                _set_groups_of(ctx, col, m, [x for x in _groups_of(ctx, col, m) if x != group])
    ctx.delete("groups", _mkey(col, rid))


async def entangle(col: Collection, group: str, ids: list[str], strength: float) -> None:
    col._check_open()
    validation.check_name(group, "group")
    ids = validation.check_ids(ids)
    if len(ids) < 2:
        raise InvalidArgument("entangle needs at least two ids", "invalid_argument")
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise InvalidArgument(f"strength ρ must be a number in [0, 1], got {strength!r}", "invalid_strength")
    now = col._now()

    def write(ctx: WriteContext) -> None:
        for rid in ids:
            doc = col._read_doc(ctx, rid)
            if doc is None or (doc["e"] is not None and doc["e"] <= now):
                raise NotFound(f"record {rid!r} does not exist in {col.name!r}", "not_found")
        raw = ctx.get("groups", _gkey(col, group))
        members = codec.unpack(raw)["members"] if raw else []
        members += [r for r in ids if r not in members]
        ctx.put("groups", _gkey(col, group), codec.pack({"members": members, "strength": float(strength)}))
        for rid in members:
            _set_groups_of(ctx, col, rid, _groups_of(ctx, col, rid) + [group])

    await col._write(write)


async def correlation(col: Collection, a: str, b: str) -> float:
    """ρ of the strongest group holding both records; 0.0 when they are not entangled."""
    col._check_open()
    validation.check_id(a)
    validation.check_id(b)

    def read(txn: Any) -> float:
        get = lambda table, key: col._storage.get(txn, table, key)  # noqa: E731
        for rid in (a, b):
            if get("records", codec.record_key(col.cid, rid)) is None:
                raise NotFound(f"record {rid!r} does not exist in {col.name!r}", "not_found")
        raw = get("groups", _mkey(col, a))
        rho = 0.0
        for group in codec.unpack(raw) if raw else []:
            g = codec.unpack(get("groups", _gkey(col, group)))
            if b in g["members"]:
                rho = max(rho, g["strength"])
        return rho

    return await col._storage.read(read)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


async def update(col: Collection, rid: str, vector: Any) -> None:
    """Replace the record's vector (its most probable branch) and move every partner by
    ρ·(new − old), renormalised to unit length under the cosine metric, atomically."""
    col._check_open()
    validation.check_id(rid)
    new = validation.check_vectors(vector, col.dim, metric=col.metric, n=1)[0]
    now = col._now()
    cosine = col.metric == "cosine"

    def moved(ctx: WriteContext, doc: dict[str, Any], vec: np.ndarray) -> dict[str, Any]:
        entry = records.doc_entry(doc)
        iids = col._alloc(ctx, len(doc["b"]))
        branches = [(iid, vec if j == entry.top else codec.vector_from(b[1]), b[2], complex(b[3], b[4]))
                    for j, (iid, b) in enumerate(zip(iids, doc["b"]))]
        return records.make_doc(branches, doc["m"], doc["e"], doc["v"] + 1)

    def write(ctx: WriteContext) -> None:
        doc = col._read_doc(ctx, rid)
        if doc is None or (doc["e"] is not None and doc["e"] <= now):
            raise NotFound(f"record {rid!r} does not exist in {col.name!r}", "not_found")
        old = codec.vector_from(doc["b"][records.doc_entry(doc).top][1])
        delta = (_unit(new) - _unit(old)) if cosine else (new - old)
        shifts: dict[str, np.ndarray] = {}
        for partner, rho in partners(ctx, col, rid):
            shifts[partner] = shifts.get(partner, 0.0) + rho * delta
        docs = {rid: moved(ctx, doc, new)}
        for partner, shift in shifts.items():
            pdoc = col._read_doc(ctx, partner)
            if pdoc is None:
                continue
            pv = codec.vector_from(pdoc["b"][records.doc_entry(pdoc).top][1])
            target = (_unit(pv) + shift) if cosine else (pv + shift)
            if cosine:
                norm = np.linalg.norm(target)
                target = target / norm if norm > 0 else _unit(pv)
            docs[partner] = moved(ctx, pdoc, target.astype(np.float32))
        col._commit_docs(ctx, docs)

    await col._write(write)
