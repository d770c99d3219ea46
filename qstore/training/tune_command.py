"""``qstore tune``: hyperparameter search over a stored dataset, with a progress bar and a final table.

    qstore tune --data-dir ./data --dataset iris --trials 30 --study iris-s1 \\
        --space '{"lr": {"low": 0.005, "high": 0.2, "log": true}, "layers": [1, 2, 3],
                  "entanglement": ["linear", "circular"]}'

Running the same command again continues the study (see ``qstore.training.tuning``).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tqdm import tqdm

from qstore.run_command import run_command


def add_tune_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "tune", help="search hyperparameters with Optuna (resumable study in the data directory)",
        description="Train one model per trial on a stored dataset, score it on validation data after every "
                    "epoch (bad trials are pruned), and print every trial. The same --study continues.")
    p.add_argument("--data-dir", required=True, help="database directory")
    p.add_argument("--dataset", required=True, help="training dataset name")
    p.add_argument("--space", required=True, help="JSON map (or @file.json): name -> [choices] | "
                                                  "{\"low\", \"high\", \"log\"} | fixed value")
    p.add_argument("--trials", type=int, default=20, help="finished trials the study should hold (default 20)")
    p.add_argument("--study", default="default", help="study name (default: default)")
    p.add_argument("--metric", choices=("accuracy", "r2", "loss"), default="accuracy")
    p.add_argument("--epochs", type=int, default=10, help="epochs per trial (default 10)")
    p.add_argument("--validation", metavar="DATASET", help="validation dataset (default: hold out 25%%)")
    p.add_argument("--model", help="base model config as JSON (default: a VQC, one qubit per feature)")
    p.add_argument("--jobs", type=int, default=2, help="trials in parallel (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_tune)
    return p


def _json(text: str, what: str) -> Any:
    try:
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as f:
                return json.load(f)
        return json.loads(text)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"qstore tune: {what} is not valid JSON: {exc}") from None


async def search(args: argparse.Namespace) -> Any:
    import qstore

    from .tuning import tune

    space = _json(args.space, "--space")
    model = _json(args.model, "--model") if args.model else None
    bar = tqdm(total=args.trials, unit="trial", file=sys.stderr, disable=args.no_progress or not sys.stderr.isatty())

    def progress(trial: dict[str, Any]) -> None:
        bar.update(1)
        if trial["score"] is not None:
            bar.set_postfix(last=f"{trial['score']:.4f}", refresh=False)

    try:
        async with await qstore.Database.open(args.data_dir) as db:
            return await tune(db, args.dataset, space, args.trials, metric=args.metric, study=args.study,
                              model=model, epochs=args.epochs, validation=args.validation, n_jobs=args.jobs,
                              seed=args.seed, progress=progress)
    finally:
        bar.close()


def table(result: Any, metric: str) -> str:
    names = sorted({k for t in result.trials for k in t["params"]})
    head = ["trial", "state", metric, "epochs", *names, "checkpoint"]
    rows = [[str(t["number"]), t["state"], "" if t["score"] is None else f"{t['score']:.4f}", str(t["epochs"]),
             *(_cell(t["params"].get(n)) for n in names), t["checkpoint"] or ""] for t in result.trials]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.append(f"best: {result.best_score:.4f}  {json.dumps(result.best_config, sort_keys=True)}  "
                 f"checkpoint {result.best_checkpoint}")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def run_tune(args: argparse.Namespace) -> int:
    return run_command("tune", search(args), lambda result: print(table(result, args.metric)),
                       f"run the same command to continue study {args.study!r}")
