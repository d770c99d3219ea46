"""The Q-Store API that both transports implement: ``qstore.Database`` in-process and
``qstore_client.AsyncClient`` over HTTP, with their collection objects.

Code that should run against either (the trainer, the federated coordinator, server jobs)
is typed against ``QStoreAPI``. ``tests/contracts/test_api_contract.py`` compares every
method's signature on both implementations with this one (and the client's argument types),
so drift fails CI.

Arrays are NumPy; anything ``numpy.asarray`` accepts may be passed where ``ArrayLike`` is
declared. Methods whose result is ``None`` acknowledge a durable write.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike

from .types import Hit, Measurement, Page, Record

Metadata = dict[str, Any]
Filter = dict[str, Any]
#: (vector, context label or None, complex amplitude)
BranchSpec = tuple[ArrayLike, str | None, complex]


@runtime_checkable
class CollectionAPI(Protocol):
    """A collection: records, search and the quantum-native primitives."""

    name: str
    dim: int
    metric: str

    async def info(self) -> dict[str, Any]: ...

    async def count(self) -> int: ...

    async def upsert(self, ids: Sequence[str], vectors: ArrayLike, metadata: Sequence[Metadata | None] | None = None,
                     coherence_time: float | None = None) -> int:
        """Insert or replace records; returns how many were written."""
        ...

    async def get(self, ids: Sequence[str]) -> list[Record | None]: ...

    async def delete(self, ids: Sequence[str]) -> int:
        """Delete records; returns how many existed."""
        ...

    async def query(self, vector: ArrayLike, top_k: int = 10, filter: Filter | None = None,
                    context: str | None = None, tunneling: float | None = None, seed: int | None = None,
                    ef: int | None = None, per_region: int | None = None) -> list[Hit]: ...

    async def query_batch(self, vectors: ArrayLike, top_k: int = 10,
                          filter: Filter | None = None) -> list[list[Hit]]: ...

    async def scroll(self, limit: int = 100, cursor: str | None = None, filter: Filter | None = None) -> Page: ...

    async def superpose(self, id: str, branches: Sequence[BranchSpec], metadata: Metadata | None = None,
                        coherence_time: float | None = None) -> None: ...

    async def measure(self, id: str, context: str | None = None, collapse: bool = False,
                      seed: int | None = None) -> Measurement: ...

    async def entangle(self, group: str, ids: Sequence[str], strength: float = 1.0) -> None: ...

    async def disentangle(self, group: str, ids: Sequence[str] | None = None) -> None:
        """Remove ``ids`` (all members when None) from ``group``."""
        ...

    async def update(self, id: str, vector: ArrayLike) -> None: ...

    async def correlation(self, id_a: str, id_b: str) -> float: ...

    async def build_regions(self, n_regions: int | None = None, seed: int = 0) -> int:
        """(Re)partition the vectors into tunneling regions; returns how many."""
        ...


@runtime_checkable
class QStoreAPI(Protocol):
    """A database: collections, quantum states, datasets and checkpoints."""

    async def close(self) -> None: ...

    async def create_collection(self, name: str, dim: int, metric: str = "cosine",
                                index: dict[str, Any] | None = None, coherence_time: float | None = None,
                                on_decohere: str = "delete", store: str | None = None) -> CollectionAPI:
        """``store``: where the records live, "lmdb" or "qdrant" (None: the server's default)."""
        ...

    async def collection(self, name: str) -> CollectionAPI: ...

    async def list_collections(self) -> list[str]: ...

    async def drop_collection(self, name: str) -> None: ...

    async def sweep(self) -> int:
        """Remove decohered records now; returns how many."""
        ...

    async def put_state(self, id: str, statevector: ArrayLike) -> None: ...

    async def get_state(self, id: str) -> np.ndarray: ...

    async def delete_state(self, id: str) -> None: ...

    async def measure_state(self, id: str, shots: int = 1000, qubits: Sequence[int] | None = None,
                            seed: int | None = None) -> dict[str, int]: ...

    async def import_dataset(self, name: str, X: ArrayLike, y: ArrayLike) -> CollectionAPI: ...

    async def list_datasets(self) -> list[str]: ...

    async def dataset_info(self, name: str) -> dict[str, Any]: ...

    async def load_dataset(self, name: str) -> tuple[np.ndarray, np.ndarray]: ...

    async def save_checkpoint(self, doc: dict[str, Any], id: str | None = None) -> str: ...

    async def load_checkpoint(self, id: str) -> dict[str, Any]: ...

    async def list_checkpoints(self, run: str | None = None) -> list[dict[str, Any]]: ...

    async def delete_checkpoint(self, id: str) -> None: ...

