"""Federated rounds across Q-Store nodes: strategies, robustness, differential privacy, scale-out.

    from qstore.federated import Coordinator
    coord = Coordinator(participants=["http://127.0.0.1:8471", "http://127.0.0.1:8472"], dataset="local",
                        strategy="fedavg", rounds=10, local_epochs=1, fraction=1.0, min_participants=2,
                        deadline_s=60, dp=None, seed=0)
    history = await coord.run(model, validation=(X_val, y_val))   # trains model in place

Modules: ``coordinator`` (rounds), ``participant`` (local training, in-process
participants), ``remote`` (participants behind a Q-Store server), ``messages`` (what
travels), ``strategies`` (aggregation), ``angles`` (circular statistics), ``privacy``
(clipping, noise, ε accounting), ``sampling``, ``executors`` (threads or Ray),
``secagg`` / ``secure_round`` / ``shamir`` (secure aggregation), ``compression``
(quantised updates), ``breaker`` and ``registry`` (participant health), ``selection``
(QUBO selection), ``command`` (``qstore federate``, ``qstore participants``).

The names below load their module on first use (``qstore.lazy``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from qstore.lazy import lazy_exports

if TYPE_CHECKING:
    from .angles import circular_mean, wrap, wrapped_delta, wrapped_delta_mean
    from .coordinator import Coordinator, RoundRecord
    from .executors import Executor, InProcessExecutor, RayExecutor, get_executor
    from .messages import RoundTask, Summary, Update
    from .participant import LocalParticipant, Participant, Proximal, SecureParticipant, train_local
    from .privacy import Accountant, DPConfig
    from .remote import RemoteParticipant
    from .sampling import Sampling
    from .secagg import SecAggConfig
    from .strategies import (
        STRATEGIES,
        CircularMean,
        FedAvg,
        FedNova,
        FedProx,
        GeometricMedian,
        Krum,
        Median,
        MultiKrum,
        Strategy,
        TrimmedMean,
        make_strategy,
    )

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "angles": ("circular_mean", "wrap", "wrapped_delta", "wrapped_delta_mean"),
    "coordinator": ("Coordinator", "RoundRecord"),
    "executors": ("Executor", "InProcessExecutor", "RayExecutor", "get_executor"),
    "messages": ("RoundTask", "Summary", "Update"),
    "participant": ("LocalParticipant", "Participant", "Proximal", "SecureParticipant", "train_local"),
    "privacy": ("Accountant", "DPConfig"),
    "remote": ("RemoteParticipant",),
    "sampling": ("Sampling",),
    "strategies": ("STRATEGIES", "CircularMean", "FedAvg", "FedNova", "FedProx", "GeometricMedian", "Krum",
                   "Median", "MultiKrum", "Strategy", "TrimmedMean", "make_strategy"),
    "secagg": ("SecAggConfig",),
})
