"""Measurement: pick a branch with probability |α_i|², optionally collapsing durably.

A collapse onto a branch labelled ``c`` propagates through entanglement: each partner
with a ``c`` branch collapses to it with probability ρ, in the same transaction.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qstore import records, validation
from qstore.errors import InvalidArgument, NotFound
from qstore.storage import WriteContext, codec
from qstore_client.types import Measurement

if TYPE_CHECKING:
    from qstore.collection import Collection


def choose(doc: dict[str, Any], context: str | None, rng: np.random.Generator) -> tuple[int, float]:
    """Index of the sampled branch and its (renormalised) probability."""
    probs = records.doc_entry(doc).probs
    if context is not None:
        mask = np.array([b[2] == context for b in doc["b"]])
        if not mask.any():
            raise NotFound(f"the record has no branch with context {context!r}", "context_not_found")
        probs = np.where(mask, probs, 0.0)
    probs = probs / probs.sum()
    i = int(rng.choice(len(probs), p=probs))
    return i, float(probs[i])


def collapsed_doc(col: Collection, ctx: WriteContext, doc: dict[str, Any], branch: int) -> dict[str, Any]:
    """The record reduced to one branch with amplitude 1 (a fresh internal id, as every write)."""
    (iid,) = col._alloc(ctx, 1)
    b = doc["b"][branch]
    return records.make_doc([(iid, codec.vector_from(b[1]), b[2], 1.0)], doc["m"], doc["e"], doc["v"] + 1)


def visible_doc(col: Collection, ctx_or_txn_get: Any, rid: str, now: float) -> dict[str, Any]:
    raw = ctx_or_txn_get(rid)
    if raw is None:
        raise NotFound(f"record {rid!r} does not exist in {col.name!r}", "not_found")
    doc = codec.unpack(raw)
    if doc["e"] is not None and doc["e"] <= now:
        view = col._view(records.doc_entry(doc), True)
        if view is None:
            raise NotFound(f"record {rid!r} has decohered (expired)", "not_found")
        t = view.iids[0]
        doc = {**doc, "b": [next(b for b in doc["b"] if b[0] == t)], "e": None}
        doc["b"][0] = [*doc["b"][0][:3], 1.0, 0.0]
    return doc


async def measure(col: Collection, rid: str, context: str | None, collapse: bool,
                  seed: int | None) -> Measurement:
    from qstore.states import entanglement

    col._check_open()
    validation.check_id(rid)
    if context is not None and not isinstance(context, str):
        raise InvalidArgument("context must be a string", "invalid_argument")
    rng = np.random.default_rng(seed)
    now = col._now()
    key = lambda r: codec.record_key(col.cid, r)  # noqa: E731

    if not collapse:
        def read(txn: Any) -> Measurement:
            doc = visible_doc(col, lambda r: col._storage.get(txn, "records", key(r)), rid, now)
            i, p = choose(doc, context, rng)
            return Measurement(doc["b"][i][2], codec.vector_from(doc["b"][i][1]), p)
        return await col._storage.read(read)

    def write(ctx: WriteContext) -> Measurement:
        doc = visible_doc(col, lambda r: ctx.get("records", key(r)), rid, now)
        i, p = choose(doc, context, rng)
        label = doc["b"][i][2]
        docs = {rid: collapsed_doc(col, ctx, doc, i)}
        if label is not None:
            for partner, rho in entanglement.partners(ctx, col, rid):
                if partner in docs:
                    continue
                pdoc = col._read_doc(ctx, partner)
                match = [j for j, b in enumerate(pdoc["b"]) if b[2] == label] if pdoc else []
                if match and len(pdoc["b"]) > 1 and rng.random() < rho:
                    docs[partner] = collapsed_doc(col, ctx, pdoc, match[0])
        col._commit_docs(ctx, docs)
        return Measurement(label, codec.vector_from(doc["b"][i][1]), p)

    return await col._write(write)
