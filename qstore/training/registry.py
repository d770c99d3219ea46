"""Optimizers and models by name: ``get_optimizer`` and ``model_from_config``.

They live apart from ``optimizers`` and ``models`` so no base module imports its subclasses.
"""
from __future__ import annotations

from typing import Any

from qstore.errors import construct, error

from .circuit_model import CircuitModel
from .hybrid import HybridModel
from .models import VQC, Model, VQCRegressor
from .optimizers import SGD, Adam, Optimizer
from .qng import QNG
from .tunneling_optimizer import TunnelingOptimizer

OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "adam": Adam, "qng": QNG, "tunneling": TunnelingOptimizer}
MODELS: dict[str, type[Model]] = {VQC.kind: VQC, VQCRegressor.kind: VQCRegressor, HybridModel.kind: HybridModel,
                                 CircuitModel.kind: CircuitModel}


def optimizer_names() -> tuple[str, ...]:
    return tuple(OPTIMIZERS)


def get_optimizer(name: str | Optimizer, lr: float | None = None, **options: Any) -> Optimizer:
    """An optimizer by name; ``options`` are its keyword arguments (e.g. ``momentum``, ``lam``, ``metric``)."""
    if isinstance(name, Optimizer):
        return name
    cls = OPTIMIZERS.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise error("unknown_optimizer", f"unknown optimizer {name!r}; choose one of {', '.join(optimizer_names())}")
    kwargs = dict(options)
    if lr is not None:
        kwargs["lr"] = lr
    return construct(cls, kwargs, f"optimizer {name!r}")


def model_from_config(config: dict[str, Any]) -> Model:
    """Rebuild a model from ``Model.config()`` (e.g. stored in a checkpoint or sent with a job)."""
    args = dict(config)
    kind = args.pop("type", VQC.kind)
    cls = MODELS.get(kind)
    if cls is None:
        raise error("invalid_argument", f"unknown model type {kind!r}; choose one of {sorted(MODELS)}")
    return construct(cls, args, f"a {kind} model")
