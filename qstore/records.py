"""The record document stored in LMDB, and its in-memory summary.

Document layout (msgpack map):
    b: [[internal_id, float32 bytes, context|None, re, im], ...]   one entry per branch
    m: metadata map      e: absolute expiry (unix seconds) or None
    v: version
Every write gives every branch a fresh internal id, so an id names one immutable vector.
The primitives build documents with ``UNASSIGNED`` ids; ``Collection`` assigns them on commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qstore.storage import codec
from qstore_client.types import Branch, Record

Doc = dict[str, Any]
UNASSIGNED = -1
_NO_METADATA: dict[str, Any] = {}  # shared by summaries without metadata; never mutated


@dataclass(slots=True)
class Entry:
    """What queries need of a record without touching LMDB."""

    rid: str
    iids: np.ndarray
    contexts: tuple[str | None, ...]
    probs: np.ndarray
    metadata: dict[str, Any]
    expires_at: float | None
    version: int

    @property
    def superposed(self) -> bool:
        return len(self.iids) > 1

    @property
    def top(self) -> int:
        """The most probable branch (the first one on ties)."""
        return int(np.argmax(self.probs))

    def collapsed(self) -> Entry:
        t = self.top
        return Entry(self.rid, self.iids[t:t + 1], self.contexts[t:t + 1], _ONE, self.metadata, None, self.version)


class Owners:
    """The summary of the record owning each internal id: a list slot per id ever assigned, 8
    bytes (ids are never reused, so a record rewritten n times leaves n empty slots behind).
    A dict cost ~90 bytes a live id, and right after a search has flushed the caches each
    pointer followed costs a cache and TLB miss: a hit reaches its record in one step."""

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: list[Entry | None] = []

    def set(self, iid: int, entry: Entry) -> None:
        slots = self.slots
        if iid >= len(slots):
            slots.extend([None] * (max(iid + 1, 2 * len(slots), 1024) - len(slots)))
        slots[iid] = entry

    def clear(self, iid: int) -> None:
        if iid < len(self.slots):
            self.slots[iid] = None

    def get(self, iid: int) -> Entry | None:
        return self.slots[iid] if 0 <= iid < len(self.slots) else None


def make_doc(branches: list[tuple[np.ndarray, str | None, complex]], metadata: dict[str, Any],
             expires_at: float | None, version: int) -> Doc:
    """A document whose branches have no internal ids yet."""
    return {
        "b": [[UNASSIGNED, codec.vector_bytes(v), ctx, float(complex(a).real), float(complex(a).imag)]
              for v, ctx, a in branches],
        "m": metadata, "e": expires_at, "v": version,
    }


def with_iids(doc: Doc, iids: list[int]) -> Doc:
    return {**doc, "b": [[iid, *b[1:]] for iid, b in zip(iids, doc["b"])]}


def next_version(old: Doc | None) -> int:
    return old["v"] + 1 if old is not None else 1


def probabilities(doc: Doc) -> np.ndarray:
    return np.array([b[3] * b[3] + b[4] * b[4] for b in doc["b"]])


def top_branch(doc: Doc) -> int:
    """The most probable branch (the first one on ties)."""
    return int(np.argmax(probabilities(doc)))


def branch_vector(doc: Doc, i: int) -> np.ndarray:
    return codec.vector_from(doc["b"][i][1])


# Most records have one branch, no context and no metadata: their summaries share these
# (read-only) parts, a third of a summary's memory.
_ONE = np.ones(1)
_ONE.setflags(write=False)
_NO_CONTEXT = (None,)


def doc_entry(rid: str, doc: Doc) -> Entry:
    b = doc["b"]
    iids = np.array([x[0] for x in b], dtype=np.int64)
    if len(b) == 1 and b[0][2] is None:
        return Entry(rid, iids, _NO_CONTEXT, _ONE, doc["m"] or _NO_METADATA, doc["e"], doc["v"])
    return Entry(rid, iids, tuple(x[2] for x in b), probabilities(doc), doc["m"] or _NO_METADATA, doc["e"], doc["v"])


def doc_branches(doc: Doc) -> list[Branch]:
    return [Branch(codec.vector_from(x[1]), x[2], complex(x[3], x[4])) for x in doc["b"]]


def doc_vectors(doc: Doc) -> np.ndarray:
    return np.stack([codec.vector_from(x[1]) for x in doc["b"]])


def doc_record(rid: str, doc: Doc) -> Record:
    branches = doc_branches(doc)
    top = branches[top_branch(doc)]
    return Record(id=rid, vector=top.vector, metadata=dict(doc["m"]), branches=branches,
                  expires_at=doc["e"], version=doc["v"])
