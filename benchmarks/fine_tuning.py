"""Fine-tuning vs training from scratch: training batches to reach a target accuracy on digits 0-vs-8.

Protocol (fixed before measuring; every seed in ``range(--seeds)`` is reported, none dropped):

* Data: 8x8 digits, a 4-component PCA of the pixels fitted on all digits; for each pair a
  stratified 70/30 split (``random_state=0``). Label 1 is the second digit of the pair, so digit 0
  is class 0 in both tasks.
* Model: ``VQC(4, 2)`` (angle encoding, 2 layers, one readout qubit), Adam ``--lr``, batches of 32.
* Pretraining: ``--pretrain-epochs`` epochs on 0-vs-1, saved as a checkpoint, rebuilt with
  ``load_model`` (its params and its feature scaler, fitted on 0-vs-1).
* Arms, all trained on 0-vs-8 with the same seed (so the same batch order):
  from scratch (a fresh ``VQC(4, 2)``); fine-tuned with every group trainable; fine-tuned with
  ``freeze=["layer0"]``.
* Measure: the held-out 30% of 0-vs-8 is scored after every training batch (the trainer's
  ``progress`` hook); the table shows the first batch at which it reaches each target
  (``-`` if not within ``--max-epochs`` epochs), and the accuracy of the pretrained model before
  any fine-tuning (batch 0).

Usage: python benchmarks/fine_tuning.py [--seeds 5] [--targets 0.95 0.98] [--lr 0.02] [--max-epochs 6]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile

import numpy as np
from tqdm import tqdm

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


async def accuracy_per_batch(trainer: Trainer, dataset: str, X_val: np.ndarray, y_val: np.ndarray,
                             epochs: int) -> np.ndarray:
    """Validation accuracy after every training batch of ``epochs`` epochs."""
    scores: list[float] = []
    await trainer.fit(dataset, epochs=epochs,
                      progress=lambda fraction, message: scores.append(trainer.model.score(X_val, y_val)))
    return np.array(scores)


def batches_to(scores: np.ndarray, target: float) -> int | None:
    hit = np.flatnonzero(scores >= target)
    return int(hit[0]) + 1 if hit.size else None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.95, 0.98])
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args()
    data = digits()
    X01, _, y01, _ = data[(0, 1)]
    X08, X08_val, y08, y08_val = data[(0, 8)]
    arms = {"from scratch": None, "fine-tuned (all trainable)": [], "fine-tuned (layer0 frozen)": ["layer0"]}
    reached: dict[tuple[str, float], list[int | None]] = {(a, t): [] for a in arms for t in args.targets}
    rows = []
    with tempfile.TemporaryDirectory() as path:
        async with await qstore.Database.open(path, sync=False) as db:
            await db.import_dataset("d01", X01, y01)
            await db.import_dataset("d08", X08, y08)
            for seed in tqdm(range(args.seeds), desc="seeds", leave=False):
                pre = Trainer(db, VQC(4, 2), lr=args.lr, seed=seed, run=f"pre-{seed}")
                await pre.fit("d01", epochs=args.pretrain_epochs, checkpoint_every=args.pretrain_epochs)
                zero_shot = (await load_model(db, pre.checkpoints[-1])).score(X08_val, y08_val)
                cells = []
                for arm, freeze in arms.items():
                    model = VQC(4, 2) if freeze is None else await load_model(db, pre.checkpoints[-1])
                    trainer = Trainer(db, model, lr=args.lr, seed=seed, freeze=freeze or [])
                    scores = await accuracy_per_batch(trainer, "d08", X08_val, y08_val, args.max_epochs)
                    for t in args.targets:
                        reached[arm, t].append(batches_to(scores, t))
                    cells.append(" / ".join(str(reached[arm, t][-1] or "-") for t in args.targets))
                rows.append(f"| {seed} | {zero_shot:.3f} | " + " | ".join(cells) + " |")
    n_batches = -(-len(X08) // 32)
    print(f"training batches ({n_batches} per epoch) until the held-out 0-vs-8 accuracy reaches "
          f"{' / '.join(f'{t:.2f}' for t in args.targets)}; lr {args.lr}, pretrained {args.pretrain_epochs} "
          f"epochs on 0-vs-1")
    print("| seed | pretrained, before fine-tuning | " + " | ".join(arms) + " |\n|---:|---:|"
          + "---:|" * len(arms))
    print("\n".join(rows))

    def mean(values: list[int | None]) -> str:
        hits = [v for v in values if v is not None]
        return f"{np.mean(hits):.1f} ({len(hits)}/{len(values)})" if hits else f"- (0/{len(values)})"

    def fewer(arm: str, t: float) -> str:
        """Seeds where the arm needed fewer batches than from scratch (never reaching = infinitely many)."""
        inf = float("inf")
        wins = sum((a or inf) < (b or inf) for a, b in zip(reached[arm, t], reached["from scratch", t]))
        return f"{wins}/{args.seeds}"

    print("| mean (seeds reached) | | " + " | ".join(" / ".join(mean(reached[a, t]) for t in args.targets)
                                                   for a in arms) + " |")
    print("| fewer batches than scratch | | | " + " | ".join(" / ".join(fewer(a, t) for t in args.targets)
                                                         for a in list(arms)[1:]) + " |")


if __name__ == "__main__":
    asyncio.run(main())
