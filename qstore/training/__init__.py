"""Training engine: variational quantum models, optimizers, the async Trainer, checkpoints, ``minimize``.

    model = VQC(n_qubits=4, layers=3, n_classes=2, encoding="angle", entanglement="linear")
    trainer = Trainer(db, model, optimizer="adam", lr=0.05, backend="statevector",
                      gradient="adjoint", batch_size=32, seed=0)
    history = await trainer.fit("iris", epochs=20, checkpoint_every=5)
    accuracy = await trainer.evaluate(X_test, y_test); labels = model.predict(X_test)
    await trainer.resume(checkpoint_id)

    result = minimize(circuit, [(1.0, "X"), (1.0, "Z")], [0.1, 0.2], optimizer="qng", lr=0.01, steps=200)
"""
from .checkpoints import checkpoint_id, config_hash, run_record_id
from .command import add_train_parser, run_train
from .hybrid import HybridModel
from .losses import cross_entropy, mean_squared_error, softmax
from .minimize import MinimizeResult, minimize, state_derivatives
from .models import VQC, Model, Runtime, VQCRegressor, model_from_config
from .optimizers import SGD, Adam, Objective, Optimizer, OptimizerState, get_optimizer, optimizer_names
from .qng import QNG
from .trainer import Trainer
from .tunneling_optimizer import TunnelingOptimizer, tunneling_probability

__all__ = [
    "QNG", "SGD", "Adam", "HybridModel", "MinimizeResult", "Model", "Objective", "Optimizer", "OptimizerState",
    "Runtime", "Trainer", "TunnelingOptimizer", "VQC", "VQCRegressor", "add_train_parser", "checkpoint_id",
    "config_hash", "cross_entropy", "get_optimizer", "mean_squared_error", "minimize", "model_from_config",
    "optimizer_names", "run_record_id", "run_train", "softmax", "state_derivatives", "tunneling_probability",
]
