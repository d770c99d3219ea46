"""``qstore train`` as the CLI will call it: add_train_parser + run_train on a data directory."""
from __future__ import annotations

import argparse
import asyncio

import pytest

import qstore
from qstore.training import add_train_parser, run_train


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qstore")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser


async def _import(path: str, data) -> None:
    async with await qstore.Database.open(path) as db:
        await db.import_dataset("flowers", data.X_train, data.y_train)


async def _checkpoints(path: str) -> list[str]:
    async with await qstore.Database.open(path) as db:
        return [c["id"] for c in await db.list_checkpoints(run="cli")]


def test_train_command_trains_checkpoints_and_resumes(tmp_path, reference, capsys) -> None:
    path = str(tmp_path / "data")
    asyncio.run(_import(path, reference("iris-binary")))
    parser = _parser()
    args = parser.parse_args(["train", "--data-dir", path, "--dataset", "flowers", "--qubits", "4", "--layers", "2",
                              "--epochs", "4", "--lr", "0.05", "--optimizer", "adam", "--batch-size", "16",
                              "--seed", "0", "--checkpoint-every", "2", "--run", "cli", "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "cli-e00004" in out
    assert asyncio.run(_checkpoints(path)) == ["cli-e00002", "cli-e00004", "cli-metrics"]

    args = parser.parse_args(["train", "--data-dir", path, "--resume", "cli-e00004", "--epochs", "2",
                              "--checkpoint-every", "2", "--no-progress"])
    assert run_train(args) == 0
    assert "cli-e00006" in capsys.readouterr().out


def test_train_command_reports_errors(tmp_path, reference, capsys) -> None:
    path = str(tmp_path / "data")
    asyncio.run(_import(path, reference("iris-binary")))
    args = _parser().parse_args(["train", "--data-dir", path, "--dataset", "missing", "--no-progress"])
    assert run_train(args) == 2
    assert "not_found" in capsys.readouterr().err


def test_train_help_lists_the_options(capsys) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["train", "--help"])
    text = capsys.readouterr().out
    for flag in ("--data-dir", "--dataset", "--qubits", "--layers", "--epochs", "--lr", "--optimizer",
                 "--batch-size", "--seed"):
        assert flag in text


def test_train_command_on_a_bundled_dataset(tmp_path, capsys) -> None:
    path = str(tmp_path / "data")
    args = _parser().parse_args(["train", "--data-dir", path, "--sklearn", "iris-binary", "--qubits", "4",
                                 "--layers", "2", "--epochs", "5", "--batch-size", "16", "--no-progress"])
    assert run_train(args) == 0
    out = capsys.readouterr().out
    test_line = next(line for line in out.splitlines() if line.startswith("test_accuracy"))
    assert float(test_line.split()[1]) >= 0.97
