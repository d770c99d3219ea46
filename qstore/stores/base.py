"""The store interface: where a collection's record documents live and how they are found.

Two stores implement it: ``LmdbFaissStore`` (``qstore.stores.lmdb_faiss``, LMDB documents and
a FAISS index: the default, and the fastest) and ``QdrantStore`` (``qstore.stores.qdrant``,
one Qdrant point per branch: sharded and replicated by a Qdrant cluster). A document is the
``qstore.records`` map (branches, metadata, expiry, version); a stored record is the document
and the record's entanglement groups. The copy job (``qstore.stores.copy``) moves records
between any two stores through this interface alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from qstore.records import Doc
from qstore.states import entanglement

Groups = dict[str, float]  # a record's groups: name -> strength


@dataclass(slots=True)
class Stored:
    """A record as a store holds it: its document (expiry not applied) and its groups."""

    doc: Doc
    groups: Groups


class RecordStore(Protocol):
    """Records in, records out, and search, with the same meaning on every store (docs/STORES.md
    lists what each one guarantees about atomicity). ``now`` is the caller's clock: expiry is
    applied at that instant."""

    async def read(self, ids: list[str]) -> dict[str, Stored]:
        """The stored records among ``ids`` (expired ones too)."""
        ...

    async def write(self, puts: dict[str, Stored], deletes: list[str] | tuple[str, ...] = ()) -> None:
        """Write whole documents and delete records, atomically where the store can."""
        ...

    async def scroll_stored(self, limit: int, cursor: str | None,
                            flt: Any) -> tuple[list[tuple[str, Stored]], str | None]:
        """A page of stored records in the store's order, and the cursor of the next. ``flt`` is
        the store's compiled form of a filter (``filter_for``)."""
        ...

    def filter_for(self, filter: dict[str, Any]) -> Any:
        """A Q-Store filter (``qstore.index.filters``) in this store's form."""
        ...

    async def search(self, q: Any, k: int, filter: dict[str, Any] | None, context: str | None,
                     now: float) -> list[tuple[str, float]]:
        """(record id, score) of the k best records visible at ``now`` (one vector; Born-weighted
        over superposed records, or over the ``context`` branches), best first."""
        ...

    async def count(self, now: float) -> int:
        """Records visible at ``now``."""
        ...

    async def sweep(self, now: float) -> int:
        """Make the decoherence of records expired at ``now`` durable; returns how many."""
        ...

    async def groups(self) -> dict[str, entanglement.Group]: ...

    async def put_groups(self, groups: dict[str, entanglement.Group]) -> None: ...


def group_doc(name: str, members: dict[str, Stored]) -> entanglement.Group | None:
    """A group as ``qstore.states.entanglement`` sees it, from its members' group maps; fewer
    than two members means it dissolved (a member was deleted or swept)."""
    ids = sorted(rid for rid, s in members.items() if name in s.groups)
    if len(ids) < 2:
        return None
    return {"members": ids, "strength": members[ids[0]].groups[name]}
