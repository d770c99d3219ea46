"""A circuit breaker per participant: stop waiting for a node that keeps failing, retry it later.

* ``closed``: the participant is asked every round it is selected.
* ``open`` after ``failures`` consecutive failures or timeouts: it is skipped at once,
  without waiting for its deadline.
* after ``backoff_s`` it is ``half_open``: the next round asks it once, and that probe
  decides: a good update closes the breaker, a failure opens it for another backoff.

Times are wall-clock seconds (``time.time``) so a breaker persisted in the participant
registry means the same after a coordinator restart.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from qstore.errors import error

STATES = ("closed", "open", "half_open")


@dataclass
class BreakerPolicy:
    """``{"failures": k, "backoff_s": seconds}``."""

    failures: int = 3
    backoff_s: float = 30.0

    @classmethod
    def of(cls, value: Any) -> BreakerPolicy:
        if value is None:
            return cls()
        if isinstance(value, BreakerPolicy):
            return value
        if not isinstance(value, dict) or set(value) - {"failures", "backoff_s"}:
            raise error("invalid_argument", "breaker must be a dict with failures and backoff_s")
        policy = cls(**value)
        if isinstance(policy.failures, bool) or not isinstance(policy.failures, int) or policy.failures < 1:
            raise error("invalid_argument", f"breaker.failures must be a positive integer, got {policy.failures!r}")
        if isinstance(policy.backoff_s, bool) or not isinstance(policy.backoff_s, (int, float)) \
                or not math.isfinite(policy.backoff_s) or policy.backoff_s < 0:
            raise error("invalid_argument", f"breaker.backoff_s must be a number >= 0, got {policy.backoff_s!r}")
        return policy


@dataclass
class Breaker:
    state: str = "closed"
    failures: int = 0  # consecutive
    opened_at: float | None = None

    def allow(self, policy: BreakerPolicy, now: float) -> bool:
        """May this participant be asked now? An open breaker past its backoff turns half-open (a probe)."""
        if self.state == "open":
            assert self.opened_at is not None
            if now - self.opened_at < policy.backoff_s:
                return False
            self.state = "half_open"
        return True

    def success(self) -> None:
        self.state, self.failures, self.opened_at = "closed", 0, None

    def failure(self, policy: BreakerPolicy, now: float) -> None:
        self.failures += 1
        if self.state == "half_open" or self.failures >= policy.failures:
            self.state, self.opened_at = "open", now

    def retry_in(self, policy: BreakerPolicy, now: float) -> float:
        return 0.0 if self.opened_at is None else max(0.0, self.opened_at + policy.backoff_s - now)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Any) -> Breaker:
        if not isinstance(doc, dict) or doc.get("state") not in STATES:
            return cls()
        opened = doc.get("opened_at")
        return cls(doc["state"], int(doc.get("failures") or 0), None if opened is None else float(opened))
