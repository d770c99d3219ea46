"""``qstore train``: train a model on a dataset stored in a data directory.

Wire it into the CLI with ``add_train_parser(subparsers)``; the parser's
default ``func`` is ``run_train(args) -> exit code``.
"""
from __future__ import annotations

import argparse
import logging
from typing import Any

from qstore.run_command import run_command

from .reference_datasets import REFERENCE_DATASETS

log = logging.getLogger(__name__)


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train a variational quantum classifier on a stored dataset",
        description="Train a VQC (or hybrid / regression model) on a dataset imported with "
                    "`qstore import` / Database.import_dataset. Checkpoints and per-epoch metrics are "
                    "written to the same data directory.")
    p.add_argument("--data-dir", required=True, help="database directory")
    p.add_argument("--dataset", help="dataset name (default: the resumed run's dataset)")
    p.add_argument("--model", choices=("vqc", "hybrid", "regressor"), default="vqc", help="model type")
    p.add_argument("--qubits", type=int, default=4, help="qubits (default 4)")
    p.add_argument("--layers", type=int, default=3, help="ansatz layers (default 3)")
    p.add_argument("--encoding", choices=("angle", "amplitude"), default="angle")
    p.add_argument("--entanglement", choices=("linear", "circular", "full"), default="linear")
    p.add_argument("--reupload", action="store_true", help="re-upload the features before every layer")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    p.add_argument("--optimizer", choices=("adam", "sgd", "qng", "tunneling"), default="adam")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="statevector",
                   help="statevector | cirq | cirq-density-matrix | density_matrix | ionq")
    p.add_argument("--noise", help="noise of the density_matrix backend: a preset (ionq_aria)")
    p.add_argument("--shots", type=int, help="estimate every expectation from this many shots (parameter-shift)")
    p.add_argument("--gradient", default="adjoint", help="adjoint | parameter-shift | finite-diff | spsa")
    p.add_argument("--checkpoint-every", type=int, default=5, help="epochs between checkpoints (0: none)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from this checkpoint id")
    p.add_argument("--validation", metavar="DATASET", help="dataset scored after every epoch")
    p.add_argument("--run", help="run name (checkpoint ids start with it)")
    p.add_argument("--sklearn", metavar="NAME", choices=REFERENCE_DATASETS,
                   help="import this scikit-learn reference dataset's 70%% training split as --dataset (if "
                        "absent), and score its 30%% test split after training (needs scikit-learn): "
                        + ", ".join(REFERENCE_DATASETS))
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)
    return p


def _model(args: argparse.Namespace, n_classes: int) -> Any:
    from .hybrid import HybridModel
    from .models import VQC, VQCRegressor

    if args.model == "regressor":
        return VQCRegressor(args.qubits, args.layers, encoding=args.encoding, entanglement=args.entanglement,
                            reupload=args.reupload)
    if args.model == "hybrid":
        return HybridModel(args.qubits, args.layers, n_classes, entanglement=args.entanglement,
                           reupload=args.reupload)
    return VQC(args.qubits, args.layers, n_classes, encoding=args.encoding, entanglement=args.entanglement,
               reupload=args.reupload)


async def train(args: argparse.Namespace) -> dict[str, Any]:
    """Run the training the arguments describe; returns the final summary."""
    import qstore

    from .data import CollectionSource
    from .trainer import Trainer

    async with await qstore.Database.open(args.data_dir) as db:
        test = await _reference_split(db, args) if args.sklearn else None
        progress_bar = False if args.no_progress else None
        options: dict[str, Any] = dict(backend=args.backend, progress_bar=progress_bar)
        if args.noise:
            options["backend_options"] = {"noise": args.noise}
        if args.shots is not None:
            options["shots"] = args.shots
        if args.resume:
            trainer = await Trainer.from_checkpoint(db, args.resume, **options)
        else:
            if not args.dataset:
                raise SystemExit("qstore train: --dataset is required unless --resume is given")
            summary = await CollectionSource(db, args.dataset).summary()
            trainer = Trainer(db, _model(args, max(2, len(summary.labels))), optimizer=args.optimizer,
                              lr=args.lr, gradient=args.gradient, batch_size=args.batch_size, seed=args.seed,
                              run=args.run, **options)
        history = await trainer.fit(args.dataset, epochs=args.epochs, checkpoint_every=args.checkpoint_every,
                                    validation=args.validation)
        metric = trainer.model.metric_name
        summary = {"run": trainer.run, "epochs": trainer.epoch, "loss": history["loss"][-1] if history else None,
                   metric: history.get(metric, [None])[-1], "checkpoints": trainer.checkpoints}
        if args.validation:
            summary[f"val_{metric}"] = history[f"val_{metric}"][-1]
        if test is not None:
            summary[f"test_{metric}"] = await trainer.evaluate(*test)
        return summary


async def _reference_split(db: Any, args: argparse.Namespace) -> tuple[Any, Any]:
    """Import the reference dataset's training split under ``--dataset`` (default: its name); the test split."""
    from .reference_datasets import RECIPES, load_reference

    recipe = RECIPES[args.sklearn]
    data = load_reference(args.sklearn, recipe.components, seed=0)
    args.dataset = args.dataset or args.sklearn
    if args.dataset not in await db.list_datasets():
        await db.import_dataset(args.dataset, data.X_train, data.y_train)
        log.info("imported %s (%s) as dataset %s", args.sklearn, data.preprocessing, args.dataset)
    return data.X_test, data.y_test


def run_train(args: argparse.Namespace) -> int:
    def show(summary: dict[str, Any]) -> None:
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            print(f"{key:<{width}}  {f'{value:.4f}' if isinstance(value, float) else value}")
    return run_command("train", train(args), show, "the newest checkpoint is kept")
