"""Decoherence: what a record looks like once its coherence time has passed.

One rule, used by every read and every write: an expired record is gone, or, with
``on_decohere="collapse"``, a superposed record is its most probable branch with no expiry.
The sweeper later makes that view durable (``Collection.sweep``).
"""
from __future__ import annotations

from qstore.records import Doc, top_branch


def expired(doc: Doc, now: float) -> bool:
    return doc["e"] is not None and doc["e"] <= now


def collapses(n_branches: int, on_decohere: str) -> bool:
    """Whether an expired record survives as its most probable branch (else it is gone)."""
    return on_decohere == "collapse" and n_branches > 1


def view(doc: Doc | None, now: float, on_decohere: str) -> Doc | None:
    """The record as every operation sees it at ``now`` (None: it does not exist)."""
    if doc is None or not expired(doc, now):
        return doc
    if collapses(len(doc["b"]), on_decohere):
        b = doc["b"][top_branch(doc)]
        return {**doc, "b": [[b[0], b[1], b[2], 1.0, 0.0]], "e": None}
    return None


def decohered(doc: Doc, now: float, on_decohere: str) -> Doc | None:
    """What the sweeper writes for an expired record: its view, as a new version."""
    seen = view(doc, now, on_decohere)
    return None if seen is None else {**seen, "v": doc["v"] + 1}
