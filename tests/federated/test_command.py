"""`qstore federate` against live nodes: progress bars, the round table, JSON history, clear errors."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from qstore.federated.command import add_federate_parser


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qstore")
    add_federate_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["federate", *argv])


def test_federate_command(nodes, split, tmp_path, capsys):
    val = tmp_path / "val.npz"
    np.savez(val, X=split.X_test, y=split.y_test)
    out = tmp_path / "history.json"
    args = parse("--participants", *[n.url for n in nodes], "--dataset", "iid", "--strategy", "trimmed_mean",
                 "--beta", "0.25", "--rounds", "3", "--local-epochs", "2", "--min-participants", "3",
                 "--validation", str(val), "--data-dir", str(tmp_path / "coord"), "--run", "cli-run",
                 "--output", str(out))
    assert args.func(args) == 0
    captured = capsys.readouterr()
    table = captured.out.splitlines()
    assert table[0].split()[:4] == ["round", "status", "updates", "samples"] and len(table) == 2 + 3
    assert all(line.split()[1] == "aggregated" for line in table[2:])
    assert "rounds" in captured.err                          # the tqdm bar over rounds
    history = json.loads(out.read_text())
    assert [h["round"] for h in history] == [1, 2, 3] and history[-1]["accuracy"] > 0.8
    assert history[-1]["checkpoint"] == "cli-run-r00003"


def test_federate_command_errors(nodes, capsys):
    args = parse("--participants", nodes[0].url, nodes[1].url, "--strategy", "krum", "--no-progress")
    assert args.func(args) == 2
    assert "n > 2f + 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse("--participants", nodes[0].url, "--strategy", "fedmagic")
    args = parse("--participants", nodes[0].url, nodes[1].url, "--dp-epsilon", "8", "--no-progress")
    assert args.func(args) == 2                              # DP and no validation data to fit the model from
    assert "validation" in capsys.readouterr().err



def test_federate_flags_reach_the_coordinator():
    args = parse("--participants", "registry", "--secure-aggregation", "--compress-bits", "8", "--data-dir", "d")
    assert args.participants == ["registry"] and args.secure_aggregation and args.compress_bits == 8


def test_participants_command(tmp_path, capsys):
    from qstore.federated.command import add_participants_parser

    def run(*argv: str) -> int:
        parser = argparse.ArgumentParser(prog="qstore")
        add_participants_parser(parser.add_subparsers(dest="command"))
        args = parser.parse_args(["participants", "--data-dir", str(tmp_path / "coord"), *argv])
        return args.func(args)

    assert run("add", "node1", "http://10.0.0.1:8470", "--tag", "eu", "--tag", "gpu") == 0
    assert run("add", "node2", "http://10.0.0.2:8470") == 0
    capsys.readouterr()
    assert run("list") == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["name", "url", "status", "breaker"] and len(table) == 4
    assert table[2].split()[:5] == ["node1", "http://10.0.0.1:8470", "unknown", "closed", "0"]
    assert table[2].endswith("eu,gpu")
    assert run("remove", "node1") == 0
    capsys.readouterr()
    assert run("--json") == 0
    assert [d["name"] for d in json.loads(capsys.readouterr().out)] == ["node2"]
    assert run("remove", "node1") == 2 and "not registered" in capsys.readouterr().err
    assert run("add", "node3", "ftp://x") == 2 and "http(s)" in capsys.readouterr().err


def test_participants_command_is_on_the_qstore_script():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from qstore_server.command import main; main()",
                           "participants", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "circuit-breaker state" in done.stdout
