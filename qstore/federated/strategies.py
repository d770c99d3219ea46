"""Aggregation strategies: how one round's updates become the next global model.

Every participant sends a *delta* (its locally trained parameters minus the global
ones; the circuit-angle part wrapped into (−π, π], see ``angles``) and its sample
count. A strategy turns the (k, P) deltas into one (P,) step for the global model.

* ``fedavg``: sample-weighted mean of the deltas (McMahan et al., 2017). Because the
  angle deltas are wrapped, this *is* wrapped-delta averaging for the angles.
* ``fedprox``: the same aggregation; participants add the proximal term
  μ/2·‖w − w_global‖² to their local loss (Li et al., 2020).
* ``circular``: sample-weighted circular mean of the participants' absolute angles;
  classical weights (readout scale and bias) by the weighted mean.
* ``median``: coordinate-wise median (Yin et al., 2018). Tolerates f < n/2.
* ``trimmed_mean``: per coordinate, drop the k = ⌈β·n⌉ largest and smallest values,
  average the rest. Needs 2k < n and, to tolerate f attackers, k ≥ f.
* ``krum`` / ``multi_krum``: score each update by the summed squared distance to its
  n − f − 2 nearest neighbours; take the best one (Krum) or average the best m
  (Multi-Krum) (Blanchard et al., 2017). Needs n > 2f + 2.
* ``fednova``: normalised averaging (Wang et al., 2020): each delta divided by the local
  steps τ_i that made it, the sample-weighted mean of those rescaled by τ_eff = Σ p_i τ_i,
  so participants that ran more steps no longer pull the model towards their own optimum.
  Not robust (f = 0); with equal τ_i it is FedAvg.
* ``geometric_median``: the point minimising the summed Euclidean distance to the deltas,
  by Weiszfeld iterations with smoothing ε (RFA, Pillutla et al., 2022). Breakdown point
  1/2: tolerates f < n/2, so it needs n >= 2f + 1.

Secure aggregation (``secagg``) reveals only sums: it composes with the strategies whose
step is a function of sums of per-participant vectors (``secure_weighting``: fedavg,
fedprox, fednova), and with no robust one, which needs the individual updates.

Robust strategies ignore sample counts: an attacker can claim any count.
"""
from __future__ import annotations

import abc
import logging
import math
from typing import Any, ClassVar

import numpy as np

from qstore.errors import construct, error

from .angles import circular_mean, weights_or_uniform, wrap

log = logging.getLogger(__name__)


class Strategy(abc.ABC):
    """Aggregates a round's deltas. `mu` is the proximal coefficient participants train with."""

    name: ClassVar[str]
    #: central DP calibrates noise to the sensitivity of a sum of clipped deltas, so it
    #: only composes with strategies that aggregate by (un)weighted sums
    sum_based: ClassVar[bool] = False
    mu: float = 0.0
    #: Byzantine participants tolerated (robust strategies); pre-round statistics resist as many
    f: int = 0
    #: what each participant contributes under secure aggregation (``secagg.summands``), or
    #: None when the strategy needs the individual updates
    secure_weighting: ClassVar[str | None] = None
    _steps: np.ndarray | None = None  # local steps of the round being aggregated (fednova)

    def min_updates(self) -> int:
        """Fewest updates this strategy can aggregate safely."""
        return 1

    def check(self, n: int) -> None:
        """Refuse (``invalid_argument``) a round of n updates this strategy cannot tolerate."""
        need = self.min_updates()
        if n < need:
            raise error("invalid_argument", f"{self.describe()} needs at least {need} updates per round, got {n}"
                                            f"{self._condition()}")

    def _condition(self) -> str:
        return ""

    def describe(self) -> str:
        return self.name

    def aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                  n_angles: int, steps: np.ndarray | None = None) -> np.ndarray:
        """(k, P) deltas and (k,) sample counts (and local steps) -> the (P,) step for the global parameters."""
        deltas = np.asarray(deltas, dtype=np.float64)
        self.check(deltas.shape[0])
        self._steps = None if steps is None else np.asarray(steps, dtype=np.float64)
        return self._aggregate(np.asarray(global_params, dtype=np.float64), deltas,
                               np.asarray(counts, dtype=np.float64), n_angles)

    def from_sums(self, total: np.ndarray, n_params: int) -> np.ndarray:
        """The step from Σ of the participants' ``secagg.summands`` vectors (secure aggregation)."""
        raise error("invalid_argument", f"{self.describe()} cannot aggregate from sums")

    @abc.abstractmethod
    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray: ...


class FedAvg(Strategy):
    name = "fedavg"
    sum_based = True
    secure_weighting = "samples"

    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray:
        return np.tensordot(weights_or_uniform(counts, len(deltas)), deltas, axes=1)

    def from_sums(self, total: np.ndarray, n_params: int) -> np.ndarray:
        # [Σ n_i·Δ_i, Σ n_i]
        return total[:n_params] / max(total[n_params], 1e-12)


class FedNova(Strategy):
    name = "fednova"
    secure_weighting = "fednova"

    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray:
        p = weights_or_uniform(counts, len(deltas))
        steps = self._steps
        if steps is None or len(steps) != len(deltas) or (steps <= 0).any():
            log.warning("fednova: local step counts unknown; averaging as fedavg")
            return np.tensordot(p, deltas, axes=1)
        return float(p @ steps) * np.tensordot(p, deltas / steps[:, None], axes=1)

    def from_sums(self, total: np.ndarray, n_params: int) -> np.ndarray:
        # [Σ n_i·Δ_i/τ_i, Σ n_i·τ_i, Σ n_i]: τ_eff·Σ p_i·Δ_i/τ_i with p_i = n_i/Σ n
        n = max(total[n_params + 1], 1e-12)
        return (total[n_params] / n) * total[:n_params] / n


class FedProx(FedAvg):
    name = "fedprox"

    def __init__(self, mu: float = 0.01):
        if not (isinstance(mu, (int, float)) and math.isfinite(mu) and mu >= 0):
            raise error("invalid_argument", f"fedprox: mu must be a finite number >= 0, got {mu!r}")
        self.mu = float(mu)

    def describe(self) -> str:
        return f"fedprox(mu={self.mu:g})"


class CircularMean(Strategy):
    name = "circular"

    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray:
        w = weights_or_uniform(counts, len(deltas))
        step = np.tensordot(w, deltas, axes=1)
        theta = global_params[:n_angles]
        mean = circular_mean(theta[None, :] + deltas[:, :n_angles], w)
        step[:n_angles] = wrap(mean - theta)
        return step


class _Robust(Strategy):
    """A strategy meant to survive `f` Byzantine participants."""

    def __init__(self, f: int = 1):
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 0:
            raise error("invalid_argument",
                        f"{self.name}: f (Byzantine participants to tolerate) must be an integer >= 0, "
                        f"got {f!r}")
        self.f = int(f)

    def describe(self) -> str:
        return f"{self.name}(f={self.f})"


class Median(_Robust):
    name = "median"

    def min_updates(self) -> int:
        return 2 * self.f + 1

    def _condition(self) -> str:
        return f" (the median tolerates f={self.f} only with n >= 2f + 1)"

    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray:
        return np.median(deltas, axis=0)


class TrimmedMean(_Robust):
    name = "trimmed_mean"

    def __init__(self, beta: float = 0.25, f: int = 1):
        super().__init__(f)
        if not (isinstance(beta, (int, float)) and 0 < beta < 0.5):
            raise error("invalid_argument",
                        f"trimmed_mean: beta must be in (0, 0.5) so that 2·beta·n < n, got {beta!r}")
        self.beta = float(beta)

    def describe(self) -> str:
        return f"trimmed_mean(beta={self.beta:g}, f={self.f})"

    def trimmed(self, n: int) -> int:
        """Values dropped from each end of a coordinate's n values."""
        return math.ceil(self.beta * n - 1e-9)  # 0.3 * 10 is 3.0000000000000004 in floating point

    def check(self, n: int) -> None:
        k = self.trimmed(n)
        if 2 * k >= n:
            raise error("invalid_argument",
                        f"{self.describe()} trims k=ceil(beta*n)={k} from each end of n={n} updates: "
                        f"nothing is left (it needs 2k < n)")
        if k < self.f:
            raise error("invalid_argument",
                        f"{self.describe()} trims only k={k} per end of n={n} updates, fewer than the "
                        f"f={self.f} attackers it must tolerate (needs k >= f)")

    def min_updates(self) -> int:
        n = 1
        while True:  # smallest n that passes check(); k grows slower than n, so this ends
            k = self.trimmed(n)
            if 2 * k < n and k >= self.f:
                return n
            n += 1

    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray:
        k = self.trimmed(len(deltas))
        ordered = np.sort(deltas, axis=0)
        return ordered[k:len(deltas) - k].mean(axis=0)


class Krum(_Robust):
    """Krum (m=1) and Multi-Krum (average of the m best-scored updates)."""

    name = "krum"

    def __init__(self, f: int = 1, m: int | None = 1):
        super().__init__(f)
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1):
            raise error("invalid_argument", f"{self.name}: m must be a positive integer, got {m!r}")
        self.m = None if m is None else int(m)

    def describe(self) -> str:
        return f"{self.name}(f={self.f}, m={self.m if self.m is not None else 'n-f'})"

    def min_updates(self) -> int:
        return 2 * self.f + 3

    def _condition(self) -> str:
        return f" (Krum tolerates f={self.f} only with n > 2f + 2)"

    def selected(self, n: int) -> int:
        return n - self.f if self.m is None else self.m

    def check(self, n: int) -> None:
        super().check(n)
        if self.selected(n) > n - self.f:
            raise error("invalid_argument",
                        f"{self.describe()} averages m={self.m} updates, but only n - f = {n - self.f} "
                        f"of n={n} are trusted")

    def scores(self, deltas: np.ndarray) -> np.ndarray:
        """Each update's summed squared distance to its n − f − 2 nearest others."""
        sq = np.sum(deltas * deltas, axis=1)
        dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * deltas @ deltas.T, 0.0)
        np.fill_diagonal(dist, np.inf)
        closest = len(deltas) - self.f - 2
        return np.sort(dist, axis=1)[:, :closest].sum(axis=1)

    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray:
        best = np.argsort(self.scores(deltas), kind="stable")[:self.selected(len(deltas))]
        log.debug("%s kept updates %s", self.describe(), best.tolist())
        return deltas[best].mean(axis=0)


class MultiKrum(Krum):
    name = "multi_krum"

    def __init__(self, f: int = 1, m: int | None = None):
        super().__init__(f, m)


class GeometricMedian(_Robust):
    """RFA's smoothed Weiszfeld: v <- Σ x_i/max(ε, ‖v − x_i‖) / Σ 1/max(ε, ‖v − x_i‖), from the
    coordinate-wise median, until v moves less than `tol` (relative) or `max_iter` passes."""

    name = "geometric_median"

    def __init__(self, f: int = 1, eps: float = 1e-6, max_iter: int = 100, tol: float = 1e-7):
        super().__init__(f)
        if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
            raise error("invalid_argument", f"geometric_median: eps must be a positive number, got {eps!r}")
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise error("invalid_argument", f"geometric_median: max_iter must be a positive integer, got {max_iter!r}")
        self.eps, self.max_iter, self.tol = float(eps), max_iter, float(tol)
        self.iterations = 0

    def describe(self) -> str:
        return f"geometric_median(f={self.f}, eps={self.eps:g})"

    def min_updates(self) -> int:
        return 2 * self.f + 1

    def _condition(self) -> str:
        return f" (the geometric median tolerates f={self.f} only with n >= 2f + 1: breakdown point 1/2)"

    def _aggregate(self, global_params: np.ndarray, deltas: np.ndarray, counts: np.ndarray,
                   n_angles: int) -> np.ndarray:
        v = np.median(deltas, axis=0)
        for iteration in range(1, self.max_iter + 1):
            self.iterations = iteration
            w = 1.0 / np.maximum(self.eps, np.linalg.norm(deltas - v, axis=1))
            nxt = w @ deltas / w.sum()
            moved = np.linalg.norm(nxt - v)
            v = nxt
            if moved <= self.tol * max(1.0, np.linalg.norm(v)):
                break
        return v


STRATEGIES: dict[str, type[Strategy]] = {cls.name: cls for cls in (
    FedAvg, FedProx, CircularMean, Median, TrimmedMean, Krum, MultiKrum, FedNova, GeometricMedian)}


def make_strategy(strategy: str | Strategy, **options: Any) -> Strategy:
    """A strategy by name with its options (``mu``, ``f``, ``beta``, ``m``), or a ready instance."""
    if isinstance(strategy, Strategy):
        if options:
            raise error("invalid_argument", "strategy options go to the constructor when passing a Strategy instance")
        return strategy
    cls = STRATEGIES.get(strategy) if isinstance(strategy, str) else None
    if cls is None:
        raise error("unknown_strategy", f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    return construct(cls, options, f"strategy {strategy!r}")
