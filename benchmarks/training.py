"""Training throughput and time to target accuracy, against cirq.Simulator with parameter-shift.

    python benchmarks/training.py [--datasets iris,moons] [--cirq-samples 8] [--seed 0]

For every reference dataset (``qstore.training.reference_datasets.RECIPES``: the
scikit-learn splits and models of the accuracy tests) the training split is
imported into a fresh database and trained with Adam on the statevector backend
with adjoint gradients, batches streamed from LMDB, test accuracy scored after
every epoch. Reported: training time per epoch, training time until the test
accuracy first reaches the target (validation time excluded), samples/s, and the
final test accuracy.

The reference is the same model and the same Trainer on ``cirq.Simulator`` with
parameter-shift gradients (2 circuits per parameter and sample), timed on a
small subset (``--cirq-samples`` rows, two optimizer steps) and extrapolated
linearly to a full epoch and to the epochs our run needed. Those columns are
marked "(extrapolated)": the full run would take minutes to hours.

A second table compares the optimizers (Adam, SGD with momentum, QNG,
tunneling) on moons (the one dataset that needs several epochs): epochs and
time to the target for three seeds, and the final test accuracy.

Before timing, one short fit per model shape compiles the numba kernels, so
the first epoch does not carry JIT time.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import tempfile
import time

import numpy as np

import qstore
from qstore.training import Trainer, model_from_config
from qstore.training.reference_datasets import RECIPES, Recipe, load_reference

OPT_EPOCHS = 40
OPTIMIZERS = {"adam": (0.05, {}), "sgd": (0.1, {"momentum": 0.9}), "qng": (0.05, {"metric": "block", "lam": 0.01}),
              "tunneling": (0.05, {"jump_every": 10, "temperature": 0.1, "cooling": 0.99})}


async def train_to_target(db, recipe: Recipe, seed: int, optimizer: str = "adam", lr: float | None = None,
                          options: dict | None = None, max_epochs: int | None = None) -> dict:
    data = load_reference(recipe.dataset, recipe.components, seed=0)
    name = recipe.dataset
    if name not in await db.list_datasets():
        await db.import_dataset(name, data.X_train, data.y_train)
    trainer = Trainer(db, model_from_config(recipe.model), optimizer=optimizer, lr=lr or recipe.lr,
                      batch_size=recipe.batch_size, seed=seed, optimizer_options=options, progress_bar=False)
    history = await trainer.fit(name, epochs=max_epochs or recipe.epochs, validation=(data.X_test, data.y_test))
    reached = next((i for i, a in enumerate(history["val_accuracy"]) if a >= recipe.target), None)
    return {"data": data, "trainer": trainer, "history": history,
            "epoch_s": float(np.mean(history["time"])),
            "samples_s": float(np.mean(history["samples_per_s"])),
            "epochs_to_target": None if reached is None else reached + 1,
            "time_to_target": None if reached is None else float(np.sum(history["time"][:reached + 1])),
            "accuracy": history["val_accuracy"][-1], "n_train": len(data.X_train)}


async def cirq_epoch_seconds(recipe: Recipe, data, samples: int, seed: int) -> float:
    """Seconds per training epoch on cirq.Simulator + parameter-shift, extrapolated from ``samples`` rows."""
    X, y = data.X_train[:samples], data.y_train[:samples]
    trainer = Trainer(None, model_from_config(recipe.model), backend="cirq", gradient="parameter-shift",
                      lr=recipe.lr, batch_size=samples, seed=seed, progress_bar=False)
    await trainer.fit((X, y), epochs=1)                     # warm-up: circuit construction, first simulate
    start = time.perf_counter()
    await trainer.fit((X, y), epochs=2)
    per_sample = (time.perf_counter() - start) / (2 * samples)
    return per_sample * len(data.X_train)


async def warm_up(names: list[str]) -> None:
    """Compile (or load) the numba kernels for every circuit shape before anything is timed."""
    for name in names + ["moons"]:
        recipe = RECIPES[name]
        model = model_from_config(recipe.model)
        data = load_reference(recipe.dataset, recipe.components, seed=0)
        trainer = Trainer(None, model, optimizer="qng", batch_size=recipe.batch_size, progress_bar=False)
        await trainer.fit((data.X_train[:recipe.batch_size], data.y_train[:recipe.batch_size]))


def fmt(value: float | None, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "not reached"
    if value >= 100:
        return f"{value:,.0f}{unit}"
    return f"{value:.{digits}g}{unit}"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")


async def main(args: argparse.Namespace) -> None:
    names = args.datasets.split(",") if args.datasets else list(RECIPES)
    await warm_up(names)
    tmp = tempfile.mkdtemp(prefix="qstore-train-bench-")
    try:
        async with await qstore.Database.open(os.path.join(tmp, "db"), sync=False) as db:
            rows = []
            for name in names:
                recipe = RECIPES[name]
                ours = await train_to_target(db, recipe, args.seed)
                cirq_epoch = None if args.no_cirq else await cirq_epoch_seconds(recipe, ours["data"],
                                                                                args.cirq_samples, args.seed)
                m = recipe.model
                model = f"{m['n_qubits']}q x {m['layers']}L" + (" reupload" if m.get("reupload") else "")
                epochs = ours["epochs_to_target"]
                row = [name, model, str(ours["n_train"]), fmt(ours["epoch_s"] * 1e3, " ms"),
                       fmt(ours["time_to_target"], " s") + (f" ({epochs} ep)" if epochs else ""),
                       fmt(ours["samples_s"]), f"{ours['accuracy']:.3f}"]
                if cirq_epoch is not None:
                    to_target = None if epochs is None else cirq_epoch * epochs
                    row += [fmt(cirq_epoch, " s"), fmt(to_target, " s"),
                            fmt(ours["n_train"] / cirq_epoch), f"{cirq_epoch / ours['epoch_s']:,.0f}x"]
                rows.append(row)
            headers = ["dataset", "model", "train rows", "time/epoch", "time to target", "samples/s",
                       "test acc"]
            if not args.no_cirq:
                headers += ["cirq time/epoch (extrapolated)", "cirq time to target (extrapolated)",
                            "cirq samples/s", "speed-up"]
            print(f"\nQ-Store statevector + adjoint (Adam, batches from LMDB) vs cirq.Simulator + parameter-shift "
                  f"({args.cirq_samples}-row subset, extrapolated); {os.cpu_count()} cores\n")
            print_table(headers, rows)

            recipe = RECIPES["moons"]
            rows = []
            for optimizer, (lr, options) in OPTIMIZERS.items():
                runs = [await train_to_target(db, recipe, seed, optimizer, lr, options, max_epochs=OPT_EPOCHS)
                        for seed in range(3)]
                rows.append([optimizer, f"{lr:g}", ", ".join(str(r["epochs_to_target"] or "-") for r in runs),
                             ", ".join(fmt(r["time_to_target"], " s") for r in runs),
                             fmt(np.mean([r["epoch_s"] for r in runs]) * 1e3, " ms"),
                             ", ".join(f"{r['accuracy']:.3f}" for r in runs)])
            m = recipe.model
            print(f"\nOptimizers on moons ({m['n_qubits']} qubits, {m['layers']} layers, re-uploading; "
                  f"target {recipe.target}; seeds 0, 1, 2; up to {OPT_EPOCHS} epochs)\n")
            print_table(["optimizer", "lr", "epochs to target", "time to target", "time/epoch",
                         f"test acc after {OPT_EPOCHS} epochs"], rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", help=f"comma-separated subset of {','.join(RECIPES)}")
    parser.add_argument("--cirq-samples", type=int, default=8, help="rows of the cirq subset (default 8)")
    parser.add_argument("--no-cirq", action="store_true", help="skip the cirq reference")
    parser.add_argument("--seed", type=int, default=0)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
