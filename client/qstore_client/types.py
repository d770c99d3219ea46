"""Result types shared by the embedded engine and the client (DESIGN section 10)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Metadata = dict[str, Any]


@dataclass(frozen=True)
class Branch:
    """One branch of a (possibly superposed) record. A plain vector is one branch, amplitude 1."""

    vector: np.ndarray
    context: str | None
    amplitude: complex = 1.0 + 0.0j

    @property
    def probability(self) -> float:
        return float(abs(self.amplitude) ** 2)


@dataclass(frozen=True)
class Record:
    id: str
    vector: np.ndarray  # the most probable branch's vector
    metadata: Metadata
    branches: list[Branch] = field(default_factory=list)
    expires_at: float | None = None
    version: int = 1


@dataclass(slots=True)  # not frozen: queries build ten a call, and a frozen __init__ costs 3x
class Hit:
    id: str
    score: float  # always higher-is-more-similar
    metadata: Metadata


@dataclass(frozen=True)
class Page:
    records: list[Record]
    next_cursor: str | None


@dataclass(frozen=True)
class Measurement:
    context: str | None
    vector: np.ndarray
    probability: float
