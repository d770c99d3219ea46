"""The record document stored in LMDB, and its in-memory summary.

Document layout (msgpack map):
    b: [[internal_id, float32 bytes, context|None, re, im], ...]   one entry per branch
    m: metadata map      e: absolute expiry (unix seconds) or None
    v: version
Every write gives every branch a fresh internal id, so an id names one immutable vector.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qstore.storage import codec
from qstore_client.types import Branch, Record


@dataclass(slots=True)
class Entry:
    """What queries need of a record without touching LMDB."""

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
        return Entry(self.iids[t:t + 1], self.contexts[t:t + 1], np.ones(1), self.metadata,
                     None, self.version)


def make_doc(branches: list[tuple[int, np.ndarray, str | None, complex]], metadata: dict[str, Any],
             expires_at: float | None, version: int) -> dict[str, Any]:
    return {
        "b": [[int(iid), codec.vector_bytes(v), ctx, float(complex(a).real), float(complex(a).imag)]
              for iid, v, ctx, a in branches],
        "m": metadata, "e": expires_at, "v": version,
    }


def doc_entry(doc: dict[str, Any]) -> Entry:
    b = doc["b"]
    return Entry(np.array([x[0] for x in b], dtype=np.int64), tuple(x[2] for x in b),
                 np.array([x[3] * x[3] + x[4] * x[4] for x in b]), doc["m"], doc["e"], doc["v"])


def doc_branches(doc: dict[str, Any]) -> list[Branch]:
    return [Branch(codec.vector_from(x[1]), x[2], complex(x[3], x[4])) for x in doc["b"]]


def doc_vectors(doc: dict[str, Any]) -> np.ndarray:
    return np.stack([codec.vector_from(x[1]) for x in doc["b"]])


def doc_record(rid: str, doc: dict[str, Any], *, collapsed: bool = False) -> Record:
    branches = doc_branches(doc)
    probs = [b.probability for b in branches]
    top = branches[int(np.argmax(probs))]
    if collapsed:
        branches = [Branch(top.vector, top.context, 1.0 + 0j)]
    return Record(id=rid, vector=top.vector, metadata=dict(doc["m"]), branches=branches,
                  expires_at=None if collapsed else doc["e"], version=doc["v"])
