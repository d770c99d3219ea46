"""The participant registry a coordinator reads and keeps up to date (``Coordinator(participants="registry")``).

The registry lives in the coordinator's own database (an embedded ``qstore.Database``,
LMDB table ``participants``): ``register_participant(name, url, tags)``,
``list_participants()``, ``remove_participant(name)``; after every round the coordinator
records each asked participant's status, last_seen, latency_s, consecutive failures and
breaker state with ``update_participant``.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ParticipantRegistry(Protocol):
    async def register_participant(self, name: str, url: str, tags: list[str] | None = None) -> dict[str, Any]: ...

    async def list_participants(self) -> list[dict[str, Any]]: ...

    async def remove_participant(self, name: str) -> None: ...

    async def update_participant(self, name: str, health: dict[str, Any]) -> None: ...
