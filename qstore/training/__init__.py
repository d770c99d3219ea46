"""Training engine: variational quantum models, optimizers, the async Trainer, checkpoints.

    model = VQC(n_qubits=4, layers=3, n_classes=2, encoding="angle", entanglement="linear")
    trainer = Trainer(db, model, optimizer="adam", lr=0.05, backend="statevector",
                      gradient="adjoint", batch_size=32, seed=0)
    history = await trainer.fit("iris", epochs=20, checkpoint_every=5)
    accuracy = await trainer.evaluate(X_test, y_test); labels = model.predict(X_test)
    await trainer.resume(checkpoint_id)

VQE over arbitrary cirq circuits (``minimize``) is ``qstore.vqe``.

The names below load their module on first use (``qstore.lazy``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from qstore.lazy import lazy_exports

if TYPE_CHECKING:
    from .checkpoints import checkpoint_id, config_hash, load_model, run_record_id
    from .circuit_model import CircuitModel
    from .command import add_train_parser, run_train
    from .hybrid import HybridModel
    from .losses import cross_entropy, mean_squared_error, softmax
    from .models import VQC, Model, Runtime, VQCRegressor
    from .optimizers import SGD, Adam, Objective, Optimizer, OptimizerState
    from .qng import QNG
    from .registry import get_optimizer, model_from_config, optimizer_names
    from .trainer import Trainer
    from .tuning import TuneResult, tune
    from .tunneling_optimizer import TunnelingOptimizer, tunneling_probability

__all__, __getattr__, __dir__ = lazy_exports(__name__, {
    "checkpoints": ("checkpoint_id", "config_hash", "load_model", "run_record_id"),
    "circuit_model": ("CircuitModel",),
    "command": ("add_train_parser", "run_train"),
    "hybrid": ("HybridModel",),
    "losses": ("cross_entropy", "mean_squared_error", "softmax"),
    "models": ("VQC", "Model", "Runtime", "VQCRegressor"),
    "optimizers": ("SGD", "Adam", "Objective", "Optimizer", "OptimizerState"),
    "qng": ("QNG",),
    "registry": ("get_optimizer", "model_from_config", "optimizer_names"),
    "trainer": ("Trainer",),
    "tuning": ("TuneResult", "tune"),
    "tunneling_optimizer": ("TunnelingOptimizer", "tunneling_probability"),
})
