"""Choosing each round's participants: Poisson sampling or a fixed fraction.

* ``poisson``: every participant joins independently with probability q = fraction;
  the round size varies. This is the scheme privacy amplification by sampling
  assumes (``PoissonSampledDpEvent``).
* ``fixed``: exactly m = ⌈fraction·N⌉ participants, drawn uniformly without
  replacement (``SampledWithoutReplacementDpEvent``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qstore.errors import error

SCHEMES = ("fixed", "poisson")


@dataclass(frozen=True)
class Sampling:
    scheme: str
    fraction: float
    population: int

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise error("invalid_argument", f"sampling must be one of {SCHEMES}, got {self.scheme!r}")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0 < self.fraction <= 1:
            raise error("invalid_argument", f"fraction must be in (0, 1], got {self.fraction!r}")
        if self.population < 1:
            raise error("invalid_argument", "a federated run needs at least one participant")

    @property
    def size(self) -> int:
        """Participants per round under ``fixed`` (the expected number is ``expected``)."""
        return max(1, min(self.population, math.ceil(self.fraction * self.population - 1e-9)))

    @property
    def everyone(self) -> bool:
        """Every participant is asked every round: no sampling randomness at all."""
        return self.fraction == 1 or (self.scheme == "fixed" and self.size == self.population)

    @property
    def expected(self) -> float:
        """Expected participants per round: the fixed denominator of DP averaging."""
        return self.fraction * self.population if self.scheme == "poisson" else float(self.size)

    def draw(self, rng: np.random.Generator) -> list[int]:
        """Indices of this round's participants, ascending."""
        if self.everyone:
            return list(range(self.population))
        if self.scheme == "poisson":
            return np.flatnonzero(rng.random(self.population) < self.fraction).tolist()
        return sorted(rng.choice(self.population, size=self.size, replace=False).tolist())
