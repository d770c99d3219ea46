"""Quantum natural gradient: steepest descent in the Fubini–Study geometry of the states.

Step: solve (g + lam I) delta = grad, then theta <- theta - lr * delta, where g
is the Fubini–Study metric g_ij = Re(<d_i psi|d_j psi> - <d_i psi|psi><psi|d_j psi>)
computed exactly on the state vector (by the objective; for a data-dependent
circuit it is averaged over the batch). ``full`` keeps every entry, ``block``
the per-layer blocks and ``diag`` the diagonal. lam > 0 keeps the system
positive definite where the metric is singular (e.g. a rotation acting on its
own eigenstate); it is solved by Cholesky, never inverted, with a least-squares
fallback for lam = 0 on a singular metric.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.linalg

from qstore.circuits.metric import METRIC_KINDS
from qstore.errors import error

from .optimizers import Objective, Optimizer

log = logging.getLogger(__name__)


def natural_direction(metric: np.ndarray, grad: np.ndarray, lam: float) -> np.ndarray:
    """delta solving (metric + lam I) delta = grad."""
    a = metric + lam * np.eye(metric.shape[0])
    try:
        factor = scipy.linalg.cho_factor(a, lower=True, check_finite=True)
        delta: np.ndarray = scipy.linalg.cho_solve(factor, grad)
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
        # Singular (lam = 0): the minimum-norm solution, i.e. the pseudo-inverse direction.
        delta = np.linalg.lstsq(a, grad, rcond=None)[0]
    return delta


class QNG(Optimizer):
    """Quantum natural gradient descent.

    Args:
        lr: step size.
        metric: ``full``, ``block`` or ``diag`` approximation of the metric tensor.
        lam: Tikhonov regularisation added to the metric's diagonal.
    """

    name = "qng"
    needs_metric = True

    def __init__(self, lr: float = 0.01, metric: str = "block", lam: float = 0.01):
        super().__init__(lr)
        if metric not in METRIC_KINDS:
            raise error("invalid_argument", f"QNG metric must be one of {METRIC_KINDS}, got {metric!r}")
        if not lam >= 0:
            raise error("invalid_argument", f"QNG lam must be >= 0, got {lam}")
        self.metric = metric
        self.lam = float(lam)

    def hyperparameters(self) -> dict[str, Any]:
        return {"lr": self.lr, "metric": self.metric, "lam": self.lam}

    def apply_grad(self, grad: np.ndarray, params: np.ndarray, objective: Objective, loss: float) -> np.ndarray:
        g = objective.metric(params, self.metric)
        return params - self.lr * natural_direction(g, grad, self.lam)
