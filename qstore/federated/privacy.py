"""Differential privacy for federated rounds: clipping, Gaussian noise and an ε accountant.

The privacy unit is a **participant**: neighbouring runs differ by one participant's
whole dataset (user-level DP, as in DP-FedAvg, McMahan et al. 2018). Each update
(the delta a participant sends) is clipped to L2 norm C, so one participant moves
a sum of updates by at most C.

* ``mode="central"`` (trusted coordinator): the coordinator clips the deltas, sums
  them, adds N(0, σ²C²·I) once and divides by the *expected* number of
  participants (a fixed denominator, so the count needs no privacy of its own).
  Updates are weighted equally: sample-count weights would make the sensitivity
  depend on private counts. Only sum-based strategies (fedavg, fedprox) compose
  with it. ε is accounted for the actual sampling scheme:

  - every participant every round: ``GaussianDpEvent(σ)`` per round;
  - Poisson sampling with rate q: ``PoissonSampledDpEvent(q, GaussianDpEvent(σ))``
    (add/remove-one neighbours; RDP or PLD accountant);
  - a fixed m of N: ``SampledWithoutReplacementDpEvent(N, m, GaussianDpEvent(σ/2))``
    (replace-one neighbours, under which the sum's sensitivity is 2C; RDP only).

* ``mode="local"`` (untrusted coordinator): each participant clips its own delta
  and adds N(0, σ²C²·I) before sending; its local metrics and row count are withheld. Nothing is
  hidden by sampling, so a participant's ε composes ``GaussianDpEvent(σ)`` over the
  rounds it actually took part in; the reported ε is the largest over participants.

Noise is drawn from fresh OS entropy, never from the run's ``seed``: whoever knows the
seed could otherwise regenerate the noise and subtract it.

Which rounds were skipped for lack of replies, and the feature statistics gathered
before the first round, are outside the accountant (see ``Coordinator``); a DP run
therefore fits the model's scaler from the coordinator's own validation data.
ε comes from the ``dp_accounting`` package; nothing here re-derives a bound.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import dp_accounting
import numpy as np
from dp_accounting import pld, rdp

from qstore.errors import error

from .sampling import Sampling

log = logging.getLogger(__name__)

MODES = ("central", "local")
ACCOUNTANTS = ("rdp", "pld")
# RDP orders: the optimum for ε in the usual 0.5..20 range lies between 2 and 64. Orders
# below 2 can fail to converge for large q, and each order costs time on every round
# (sampling without replacement is slow at high orders), so the grid is dense where the
# optimum lands and sparse beyond. ε is within 1% of the library's default grid.
RDP_ORDERS = (2, 2.25, 2.5, 2.75, 3, 3.25, 3.5, 3.75, *(x / 2 for x in range(8, 32)), *range(16, 65), 80, 96, 128, 256)
# PLD discretisation rounds pessimistically, so a coarser grid is still an upper bound on ε;
# 1e-3 moves ε by ~1e-6 here and is ten times faster than the library's 1e-4.
PLD_DISCRETIZATION = 1e-3


@dataclass(frozen=True)
class DPConfig:
    """Clip norm C, noise multiplier σ (or a target ε to calibrate σ for), δ, mode and accountant."""

    clip: float = 1.0
    noise_multiplier: float | None = None
    target_epsilon: float | None = None
    delta: float = 1e-5
    mode: str = "central"
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        def positive(value: Any, name: str) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or value <= 0:
                raise error("invalid_argument", f"dp.{name} must be a positive finite number, got {value!r}")
        positive(self.clip, "clip")
        if self.noise_multiplier is None and self.target_epsilon is None:
            raise error("invalid_argument", "dp needs noise_multiplier (σ) or target_epsilon (to calibrate σ for)")
        if self.noise_multiplier is not None:
            positive(self.noise_multiplier, "noise_multiplier")
        if self.target_epsilon is not None:
            positive(self.target_epsilon, "target_epsilon")
        positive(self.delta, "delta")
        if self.delta >= 1:
            raise error("invalid_argument", f"dp.delta must be < 1, got {self.delta}")
        if self.mode not in MODES:
            raise error("invalid_argument", f"dp.mode must be one of {MODES}, got {self.mode!r}")
        if self.accountant not in ACCOUNTANTS:
            raise error("invalid_argument", f"dp.accountant must be one of {ACCOUNTANTS}, got {self.accountant!r}")

    @classmethod
    def of(cls, value: DPConfig | dict[str, Any] | None) -> DPConfig | None:
        if value is None or isinstance(value, DPConfig):
            return value
        if isinstance(value, dict):
            try:
                return cls(**value)
            except TypeError as exc:
                raise error("invalid_argument", f"bad dp options {sorted(value)}: {exc}") from None
        raise error("invalid_argument", f"dp must be a DPConfig, a dict or None, got {type(value).__name__}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def clip(delta: np.ndarray, bound: float) -> np.ndarray:
    """Scale `delta` down to L2 norm `bound` if it is longer."""
    norm = float(np.linalg.norm(delta))
    return delta * (bound / norm) if norm > bound else delta


def noise_rng() -> np.random.Generator:
    """A generator seeded from OS entropy (see the module docstring)."""
    return np.random.default_rng()


def privatize(delta: np.ndarray, bound: float, sigma: float) -> np.ndarray:
    """Local DP: clip to `bound` and add N(0, (σ·bound)²) to every coordinate."""
    return clip(delta, bound) + noise_rng().normal(0.0, sigma * bound, size=delta.shape)


def noisy_mean(deltas: np.ndarray, bound: float, sigma: float, denominator: float) -> np.ndarray:
    """Central DP: (Σ clip(Δ_i) + N(0, (σ·bound)²·I)) / denominator."""
    total = np.zeros(deltas.shape[1]) if len(deltas) == 0 else np.sum([clip(d, bound) for d in deltas], axis=0)
    return (total + noise_rng().normal(0.0, sigma * bound, size=total.shape)) / denominator


class Accountant:
    """ε spent so far by a run, from dp_accounting, for its sampling scheme and DP mode.

    Build it once per run: when ``dp.noise_multiplier`` is None it calibrates σ so that
    `rounds` rounds spend exactly ``dp.target_epsilon`` at ``dp.delta``.
    """

    def __init__(self, dp: DPConfig, sampling: Sampling, rounds: int):
        self.dp = dp
        self.sampling = sampling
        self.rounds = rounds
        if dp.mode == "central" and dp.accountant == "pld" and self._without_replacement:
            raise error("invalid_argument", "the PLD accountant has no sampling-without-replacement event: use "
                                            "accountant='rdp' or sampling='poisson'")
        self.sigma = dp.noise_multiplier if dp.noise_multiplier is not None else self.calibrate()
        self.rounds_done = 0
        self.participation: dict[str, int] = {}

    @property
    def _without_replacement(self) -> bool:
        return self.sampling.scheme == "fixed" and not self.sampling.everyone

    @property
    def relation(self) -> dp_accounting.NeighboringRelation:
        if self.dp.mode == "central" and self._without_replacement:
            return dp_accounting.NeighboringRelation.REPLACE_ONE
        return dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE

    def fresh(self, kind: str | None = None) -> dp_accounting.PrivacyAccountant:
        if (kind or self.dp.accountant) == "pld":
            return pld.PLDAccountant(self.relation, value_discretization_interval=PLD_DISCRETIZATION)
        return rdp.RdpAccountant(list(RDP_ORDERS), self.relation)

    def round_event(self, sigma: float) -> dp_accounting.DpEvent:
        """What one round releases about one participant."""
        gaussian = dp_accounting.GaussianDpEvent(sigma)
        if self.dp.mode == "local" or self.sampling.everyone:
            return gaussian
        if self.sampling.scheme == "poisson":
            return dp_accounting.PoissonSampledDpEvent(self.sampling.fraction, gaussian)
        # Replace-one doubles the sum's sensitivity to 2C, halving σ in sensitivity units.
        return dp_accounting.SampledWithoutReplacementDpEvent(
            self.sampling.population, self.sampling.size, dp_accounting.GaussianDpEvent(sigma / 2))

    def event(self, sigma: float, rounds: int) -> dp_accounting.DpEvent:
        return dp_accounting.SelfComposedDpEvent(self.round_event(sigma), rounds)

    def epsilon_for(self, sigma: float, rounds: int) -> float:
        if rounds == 0:
            return 0.0
        accountant = self.fresh()
        accountant.compose(self.event(sigma, rounds))
        return float(accountant.get_epsilon(self.dp.delta))

    def calibrate(self) -> float:
        """σ for which `rounds` rounds spend the target ε (dp_accounting.calibrate_dp_mechanism)."""
        sigma = self._calibrate("rdp", dp_accounting.LowerEndpointAndGuess(1e-3, 1.0))
        if self.dp.accountant == "pld":
            # PLD memory explodes at tiny σ, so search only below the RDP answer, which is an upper
            # bound (RDP over-estimates ε); fall back to it if the bracket does not hold.
            try:
                sigma = self._calibrate("pld", dp_accounting.ExplicitBracketInterval(sigma / 2, sigma))
            except ValueError as exc:
                log.info("dp: PLD calibration kept the RDP noise multiplier %.4f (%s)", sigma, exc)
        log.info("dp: calibrated noise multiplier %.4f for epsilon=%g, delta=%g over %d rounds (%s, %s sampling, "
                 "%s)", sigma, self.dp.target_epsilon, self.dp.delta, self.rounds, self.dp.mode,
                 self.sampling.scheme, self.dp.accountant)
        return sigma

    def _calibrate(self, accountant: str, bracket: dp_accounting.BracketInterval) -> float:
        assert self.dp.target_epsilon is not None
        def make_accountant() -> dp_accounting.PrivacyAccountant:
            return self.fresh(accountant)

        def make_event(sigma: float) -> dp_accounting.DpEvent:
            return self.event(sigma, self.rounds)

        return float(dp_accounting.calibrate_dp_mechanism(make_accountant, make_event, self.dp.target_epsilon,
                                                          self.dp.delta, bracket_interval=bracket, tol=1e-3))

    def spend(self, participants: list[str]) -> float:
        """Record one round (with who took part, for local DP); returns ε spent so far."""
        self.rounds_done += 1
        for name in participants:
            self.participation[name] = self.participation.get(name, 0) + 1
        return self.epsilon

    @property
    def epsilon(self) -> float:
        if self.dp.mode == "local":
            return self.epsilon_for(self.sigma, max(self.participation.values(), default=0))
        return self.epsilon_for(self.sigma, self.rounds_done)
