"""Fine-tuning vs training from scratch: epochs to reach a target accuracy on digits 0-vs-8.

A VQC (4 qubits, 2 layers, angle encoding of a 4-component PCA of the 8x8 pixels, PCA fitted
on all digits) is pretrained on digits 0-vs-1, saved as a checkpoint, rebuilt with
``load_model`` and fine-tuned on 0-vs-8 with ``Trainer(freeze=["layer0"])``. The same model
trained from scratch on 0-vs-8 is the reference. Both use Adam (``--lr``, default 0.02), batches of 32, and
the same seeds; after every epoch the held-out 30% of 0-vs-8 is scored, and the table shows the
first epoch at which it reaches ``--target`` (``-`` if not within ``--max-epochs``).

Usage: python benchmarks/fine_tuning.py [--seeds 5] [--target 0.98] [--lr 0.02] [--max-epochs 15]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile

import numpy as np

import qstore
from qstore.training import VQC, Trainer, load_model


def digits() -> dict[tuple[int, int], tuple[np.ndarray, ...]]:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    Z = PCA(4, random_state=0).fit_transform(X)
    out = {}
    for pair in ((0, 1), (0, 8)):
        keep = np.isin(y, pair)
        out[pair] = tuple(train_test_split(Z[keep], (y[keep] == pair[1]).astype(int), test_size=0.3,
                                           stratify=y[keep], random_state=0))
    return out


async def epochs_to_target(trainer: Trainer, dataset: str, X_val: np.ndarray, y_val: np.ndarray,
                           target: float, max_epochs: int) -> int | None:
    for epoch in range(1, max_epochs + 1):
        await trainer.fit(dataset, epochs=1)
        if await trainer.evaluate(X_val, y_val) >= target:
            return epoch
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()
    data = digits()
    X01, _, y01, _ = data[(0, 1)]
    X08, X08_val, y08, y08_val = data[(0, 8)]
    print(f"epochs to {args.target:.2f} validation accuracy on digits 0-vs-8")
    print("| seed | from scratch | fine-tuned (layer0 frozen) |\n|---:|---:|---:|")
    scratch_all, tuned_all = [], []
    with tempfile.TemporaryDirectory() as path:
        async with await qstore.Database.open(path, sync=False) as db:
            await db.import_dataset("d01", X01, y01)
            await db.import_dataset("d08", X08, y08)
            for seed in range(args.seeds):
                pre = Trainer(db, VQC(4, 2), lr=args.lr, seed=seed, run=f"pre-{seed}")
                await pre.fit("d01", epochs=args.pretrain_epochs, checkpoint_every=args.pretrain_epochs)
                model = await load_model(db, pre.checkpoints[-1])
                tuned = await epochs_to_target(Trainer(db, model, lr=args.lr, seed=seed, freeze=["layer0"]), "d08",
                                               X08_val, y08_val, args.target, args.max_epochs)
                scratch = await epochs_to_target(Trainer(db, VQC(4, 2), lr=args.lr, seed=seed), "d08",
                                                 X08_val, y08_val, args.target, args.max_epochs)
                scratch_all.append(scratch)
                tuned_all.append(tuned)
                print(f"| {seed} | {scratch or '-'} | {tuned or '-'} |", flush=True)

    def mean(values: list[int | None]) -> str:
        reached = [v for v in values if v is not None]
        return f"{np.mean(reached):.1f} ({len(reached)}/{len(values)} reached)" if reached else "-"

    print(f"| mean | {mean(scratch_all)} | {mean(tuned_all)} |")


if __name__ == "__main__":
    asyncio.run(main())
