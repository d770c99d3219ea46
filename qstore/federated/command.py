"""``qstore federate``: coordinate federated rounds over running Q-Store servers.

Wire it into the CLI with ``add_federate_parser(subparsers)``; the parser's default
``func`` is ``run_federate(args) -> exit code``.

    qstore federate --participants http://10.0.0.1:8470 http://10.0.0.2:8470 http://10.0.0.3:8470 \\
        --dataset local --strategy trimmed_mean --rounds 20 --validation val.npz --data-dir ./coordinator
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from qstore.run_command import run_command

from .sampling import SCHEMES
from .strategies import STRATEGIES

log = logging.getLogger(__name__)


def add_federate_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "federate", help="train a model in federated rounds over Q-Store servers",
        description="Run federated rounds: each participant server trains the global model on its own "
                    "dataset (a `federated_fit` job) and returns only a parameter update. Participants "
                    "that fail or miss the deadline are left out of that round.")
    p.add_argument("--participants", nargs="+", required=True, metavar="URL",
                   help="participant server URLs, or `registry` for those registered in --data-dir "
                        "(`qstore participants add`)")
    p.add_argument("--api-key", default=os.environ.get("QSTORE_API_KEY"),
                   help="bearer key for the participants (default: $QSTORE_API_KEY)")
    p.add_argument("--dataset", default="local", help="dataset name on every participant (default: %(default)s)")
    rounds = p.add_argument_group("rounds")
    rounds.add_argument("--strategy", choices=list(STRATEGIES), default="fedavg")
    rounds.add_argument("--mu", type=float, help="fedprox proximal coefficient")
    rounds.add_argument("--byzantine", "-f", type=int, dest="f", help="attackers to tolerate (median, "
                        "trimmed_mean, krum, multi_krum; default 1)")
    rounds.add_argument("--beta", type=float, help="trimmed_mean: share trimmed from each end")
    rounds.add_argument("--krum-m", type=int, dest="m", help="multi_krum: updates averaged")
    rounds.add_argument("--rounds", type=int, default=10)
    rounds.add_argument("--local-epochs", type=int, default=1)
    rounds.add_argument("--fraction", type=float, default=1.0, help="share of participants per round")
    rounds.add_argument("--sampling", choices=SCHEMES, default="fixed")
    rounds.add_argument("--min-participants", type=int, default=2)
    rounds.add_argument("--deadline", type=float, default=60.0, help="seconds a round waits for updates")
    rounds.add_argument("--target-updates", type=int, help="close a round once this many updates arrived")
    rounds.add_argument("--secure-aggregation", action="store_true",
                        help="SecAgg: the coordinator learns only the sum of the updates (fedavg, fedprox, fednova)")
    rounds.add_argument("--compress-bits", type=int, metavar="B",
                        help="send deltas quantised to B bits (4..16) with error feedback")
    model = p.add_argument_group("model and local training")
    model.add_argument("--model", choices=("vqc", "hybrid"), default="vqc")
    model.add_argument("--qubits", type=int, default=4)
    model.add_argument("--layers", type=int, default=2)
    model.add_argument("--classes", type=int, default=2)
    model.add_argument("--entanglement", choices=("linear", "circular", "full"), default="linear")
    model.add_argument("--optimizer", choices=("adam", "sgd", "qng", "tunneling"), default="adam")
    model.add_argument("--lr", type=float, default=0.05)
    model.add_argument("--batch-size", type=int, default=16)
    model.add_argument("--seed", type=int, default=0)
    dp = p.add_argument_group("differential privacy (on when --dp-noise or --dp-epsilon is given)")
    dp.add_argument("--dp-clip", type=float, default=1.0, help="L2 bound on each update (default %(default)s)")
    dp.add_argument("--dp-noise", type=float, help="noise multiplier sigma")
    dp.add_argument("--dp-epsilon", type=float, help="target epsilon to calibrate sigma for")
    dp.add_argument("--dp-delta", type=float, default=1e-5)
    dp.add_argument("--dp-mode", choices=("central", "local"), default="central")
    dp.add_argument("--dp-accountant", choices=("rdp", "pld"), default="rdp")
    out = p.add_argument_group("output")
    out.add_argument("--validation", type=Path, metavar="NPZ", help=".npz with arrays X and y, scored every round")
    out.add_argument("--data-dir", help="embedded database to checkpoint each round's global model in")
    out.add_argument("--run", help="run name (checkpoint ids start with it)")
    out.add_argument("--output", type=Path, help="write the per-round history here as JSON")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_federate)
    return p


def _model(args: argparse.Namespace) -> Any:
    from qstore.training import VQC, HybridModel

    if args.model == "hybrid":
        return HybridModel(args.qubits, args.layers, args.classes, entanglement=args.entanglement)
    return VQC(args.qubits, args.layers, args.classes, entanglement=args.entanglement)


def _dp(args: argparse.Namespace) -> dict[str, Any] | None:
    if args.dp_noise is None and args.dp_epsilon is None:
        return None
    return {"clip": args.dp_clip, "noise_multiplier": args.dp_noise, "target_epsilon": args.dp_epsilon,
            "delta": args.dp_delta, "mode": args.dp_mode, "accountant": args.dp_accountant}


def _validation(path: Path | None) -> tuple[np.ndarray, np.ndarray] | None:
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as data:
        if "X" not in data or "y" not in data:
            raise SystemExit(f"qstore federate: {path} must hold arrays named X and y")
        return np.asarray(data["X"]), np.asarray(data["y"])


class _Bars:
    """One bar over rounds, and per round a bar of the replies that came in."""

    def __init__(self, rounds: int, disable: bool):
        self.disable = disable
        self.outer = tqdm(total=rounds, desc="rounds", unit="round", file=sys.stderr, disable=disable)
        self.inner: tqdm | None = None

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "round_start":
            self.inner = tqdm(total=len(info["selected"]), desc=f"round {info['round']}", unit="update",
                              leave=False, file=sys.stderr, disable=self.disable)
        elif event == "reply" and self.inner is not None:
            self.inner.update(1)
            if not info["ok"]:
                self.inner.set_postfix(failed=info["participant"], refresh=False)
        elif event == "round_end":
            if self.inner is not None:
                self.inner.close()
            record = info["record"]
            postfix = {"updates": len(record.participants)}
            if record.accuracy is not None:
                postfix["acc"] = f"{record.accuracy:.3f}"
            if record.epsilon is not None:
                postfix["eps"] = f"{record.epsilon:.2f}"
            self.outer.set_postfix(postfix, refresh=False)
            self.outer.update(1)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
        self.outer.close()


async def federate(args: argparse.Namespace) -> list[Any]:
    """Run the federated training the arguments describe; returns the per-round records."""
    import qstore

    from .coordinator import Coordinator

    options = {k: getattr(args, k) for k in ("mu", "f", "beta", "m") if getattr(args, k) is not None}
    bars = _Bars(args.rounds, disable=args.no_progress)
    db = await qstore.Database.open(args.data_dir) if args.data_dir else None
    try:
        participants = "registry" if args.participants == ["registry"] else args.participants
        coordinator = Coordinator(
            participants, dataset=args.dataset, strategy=args.strategy, rounds=args.rounds,
            local_epochs=args.local_epochs, fraction=args.fraction, min_participants=args.min_participants,
            deadline_s=args.deadline, dp=_dp(args), seed=args.seed, sampling=args.sampling,
            strategy_options=options, target_updates=args.target_updates, optimizer=args.optimizer, lr=args.lr,
            batch_size=args.batch_size, db=db, api_key=args.api_key, run=args.run, progress=bars,
            secure_aggregation=args.secure_aggregation,
            compression=None if args.compress_bits is None else {"bits": args.compress_bits})
        return await coordinator.run(_model(args), validation=_validation(args.validation))
    finally:
        bars.close()
        if db is not None:
            await db.close()


def _table(history: list[Any]) -> str:
    head = f"{'round':>5}  {'status':<10}  {'updates':>7}  {'samples':>7}  {'accuracy':>8}  {'epsilon':>7}  " \
           f"{'seconds':>7}  excluded"
    rows = [head, "-" * len(head)]
    for h in history:
        acc = "-" if h.accuracy is None else f"{h.accuracy:.4f}"
        eps = "-" if h.epsilon is None else f"{h.epsilon:.3f}"
        rows.append(f"{h.round:>5}  {h.status:<10}  {len(h.participants):>7}  {h.samples:>7}  {acc:>8}  {eps:>7}  "
                    f"{h.seconds:>7.2f}  {', '.join(sorted(h.excluded)) or '-'}")
    return "\n".join(rows)


def run_federate(args: argparse.Namespace) -> int:
    def show(history: list[Any]) -> None:
        print(_table(history))
        if args.output is not None:
            args.output.write_text(json.dumps([h.to_dict() for h in history], indent=2))
    return run_command("federate", federate(args), show, "checkpoints of finished rounds are kept")


def add_participants_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "participants", help="the federated participant registry of a coordinator's database",
        description="List, add or remove the participants that `qstore federate --participants registry` "
                    "(or Coordinator(participants='registry', db=db)) trains with, and see each one's "
                    "status, last contact, latency, consecutive failures and circuit-breaker state.")
    p.add_argument("--data-dir", required=True, help="the coordinator's embedded database")
    p.add_argument("--json", action="store_true", help="print the registry as JSON")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    add = actions.add_parser("add", help="register (or re-address) a participant")
    add.add_argument("name")
    add.add_argument("url", help="the participant server, e.g. http://10.0.0.1:8470")
    add.add_argument("--tag", action="append", dest="tags", help="a tag (repeatable)")
    remove = actions.add_parser("remove", help="forget a participant")
    remove.add_argument("name")
    actions.add_parser("list", help="show the registry (the default)")
    p.set_defaults(func=run_participants)
    return p


def _when(seconds: float | None) -> str:
    import time

    return "-" if seconds is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def participants_table(docs: list[dict[str, Any]]) -> str:
    head = f"{'name':<16}  {'url':<28}  {'status':<8}  {'breaker':<9}  {'failures':>8}  {'latency':>8}  " \
           f"{'last seen (UTC)':<19}  tags"
    rows = [head, "-" * len(head)]
    for d in docs:
        latency = "-" if d.get("latency_s") is None else f"{d['latency_s']:.2f}s"
        rows.append(f"{d['name']:<16}  {d['url']:<28}  {d['status']:<8}  {d['breaker']['state']:<9}  "
                    f"{d['failures']:>8}  {latency:>8}  {_when(d.get('last_seen')):<19}  {','.join(d['tags']) or '-'}")
    return "\n".join(rows)


async def participants(args: argparse.Namespace) -> list[dict[str, Any]]:
    import qstore

    async with await qstore.Database.open(args.data_dir) as db:
        if args.action == "add":
            await db.register_participant(args.name, args.url, tags=args.tags)
        elif args.action == "remove":
            await db.remove_participant(args.name)
        return await db.list_participants()


def run_participants(args: argparse.Namespace) -> int:
    return run_command("participants", participants(args),
                       lambda docs: print(json.dumps(docs, indent=2) if args.json else participants_table(docs)))
