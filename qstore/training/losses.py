"""Losses with their gradients, side by side: softmax cross-entropy and mean squared error.

Each returns ``(loss, dloss/dinput)`` for a batch; losses are batch means, so the
gradient already carries the 1/B factor.
"""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (B, K) logits, shifted by the row max so exp never overflows."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Mean softmax cross-entropy for integer class targets (B,).

    Returns ``(loss, dloss/dlogits (B, K), probabilities (B, K))``. The loss is
    computed from log-softmax directly, so a confident wrong answer gives a large
    finite loss rather than log(0).
    """
    B = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    rows = np.arange(B)
    loss = float(np.mean(log_norm - z[rows, targets]))
    probs = np.exp(z - log_norm[:, None])
    grad = probs.copy()
    grad[rows, targets] -= 1.0
    return loss, grad / B, probs


def mean_squared_error(predictions: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean of (prediction - target)^2 over (B,) rows; returns ``(loss, dloss/dprediction)``."""
    diff = predictions - targets
    return float(np.mean(diff ** 2)), 2.0 * diff / diff.shape[0]


def r2_score(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Coefficient of determination; a constant target scores 1.0 if hit exactly, else 0.0 (as scikit-learn)."""
    ss_res = float(np.sum((targets - predictions) ** 2))
    ss_tot = float(np.sum((targets - targets.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot
