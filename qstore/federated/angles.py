"""Averaging rotation angles, which live on a circle rather than a line.

A VQC's circuit parameters are rotation angles: expectation values are 2π-periodic
in each of them, so θ and θ + 2π are the same model. The arithmetic mean is wrong
across the ±π seam: the mean of π − 0.1 and −π + 0.1 is 0, the point opposite
both; the right answer is π. Two correct ways to average:

* **circular mean**: the direction of the weighted sum of unit vectors e^{iθ_k};
* **wrapped-delta averaging**: wrap each participant's change θ_k − θ_global into
  (−π, π], average the changes, add them to θ_global and wrap again.

They agree when the participants' angles sit within a half-turn of each other;
wrapped deltas also keep the updates small vectors that can be clipped and noised
for differential privacy, which is why FedAvg uses them.
"""
from __future__ import annotations

import numpy as np

from qstore.errors import error

TWO_PI = 2.0 * np.pi


def wrap(angles: np.ndarray) -> np.ndarray:
    """Map angles into (−π, π]."""
    a = np.asarray(angles, dtype=np.float64)
    wrapped = np.mod(a + np.pi, TWO_PI) - np.pi       # [−π, π)
    return np.where(wrapped == -np.pi, np.pi, wrapped)  # keep +π, the usual half-open convention


def weights_or_uniform(weights: np.ndarray | None, k: int) -> np.ndarray:
    """Normalised non-negative weights for k items (uniform when None)."""
    w = np.ones(k) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (k,) or np.any(w < 0) or not np.isfinite(w).all() or w.sum() <= 0:
        raise error("invalid_argument", f"weights must be {k} non-negative finite numbers with a positive sum")
    return w / w.sum()


def circular_mean(angles: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted circular mean over axis 0 of (k, P) angles -> (P,) in (−π, π].

    Where the resultant vanishes (angles spread evenly round the circle) the mean is
    undefined; atan2(0, 0) = 0 is returned there, as scipy.stats.circmean does.
    """
    a = np.asarray(angles, dtype=np.float64)
    w = weights_or_uniform(weights, a.shape[0])
    s = np.tensordot(w, np.sin(a), axes=1)
    c = np.tensordot(w, np.cos(a), axes=1)
    return wrap(np.arctan2(s, c))


def wrapped_delta(new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """The shortest signed rotation from `old` to `new`, in (−π, π]."""
    return wrap(np.asarray(new, dtype=np.float64) - np.asarray(old, dtype=np.float64))


def wrapped_delta_mean(angles: np.ndarray, reference: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Average (k, P) angles as `reference` + mean of their wrapped deltas from it, wrapped."""
    a = np.asarray(angles, dtype=np.float64)
    w = weights_or_uniform(weights, a.shape[0])
    deltas = wrapped_delta(a, np.asarray(reference, dtype=np.float64)[None, :])
    return wrap(reference + np.tensordot(w, deltas, axes=1))
