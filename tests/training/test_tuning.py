"""tune: Optuna search over training configs, study kept in the data directory, resumable after SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import qstore
from qstore.errors import QStoreError
from qstore.training import load_model, tune

optuna = pytest.importorskip("optuna")

SPACE = {"lr": {"low": 0.01, "high": 0.3, "log": True}, "layers": [1, 2, 3],
         "entanglement": ["linear", "circular"]}


async def test_tune_finds_a_config_at_least_as_good_as_the_median_trial(fastdb, reference) -> None:
    data = reference("iris-binary")
    await fastdb.import_dataset("flowers", data.X_train, data.y_train)
    from qstore.federated import InProcessExecutor

    seen = []
    executor = InProcessExecutor(max_workers=2)          # trials' epochs run through a federated executor
    try:
        result = await tune(fastdb, "flowers", SPACE, n_trials=8, metric="accuracy", study="s1", epochs=3,
                            executor=executor, n_jobs=2, progress=seen.append)
    finally:
        await executor.close()
    assert len(result.trials) == 8 == len(seen)
    finished = [t for t in result.trials if t["state"] in ("complete", "pruned")]
    assert len(finished) == 8
    scores = [t["score"] for t in result.trials if t["state"] == "complete"]
    assert result.best_score >= np.median(scores)
    assert set(result.best_config) == {"model", "lr"} and result.best_config["model"]["layers"] in (1, 2, 3)
    # every trial left a checkpoint; the best one holds the model that scored best_score
    for t in result.trials:
        assert (await fastdb.load_checkpoint(t["checkpoint"]))["run"] == f"s1-t{t['number']:04d}"
    model = await load_model(fastdb, result.best_checkpoint)
    assert model.config()["entanglement"] == result.best_config["model"]["entanglement"]
    assert model.score(data.X_test, data.y_test) >= 0.9
    assert os.path.exists(os.path.join(fastdb.path, "tuning", "s1.journal"))
    # asking again for the same number of trials runs nothing new
    again = await tune(fastdb, "flowers", SPACE, n_trials=8, study="s1", epochs=3)
    assert [t["number"] for t in again.trials] == [t["number"] for t in result.trials]


async def test_bad_spaces_are_refused_before_anything_runs(fastdb, reference) -> None:
    data = reference("iris-binary")
    await fastdb.import_dataset("flowers", data.X_train, data.y_train)
    for space, kwargs in [({}, {}), ({"lr": {"low": 1, "high": 0}}, {}), ({"lr": []}, {}),
                          ({"layers": [0]}, {}), ({"lr": [0.1]}, {"metric": "f1"}), ({"lr": [0.1]}, {"study": "../x"}),
                          ({"lr": [0.1]}, {"n_trials": 0})]:
        with pytest.raises(QStoreError):
            await tune(fastdb, "flowers", space, **{"n_trials": 2, **kwargs})
    assert not os.path.exists(os.path.join(fastdb.path, "tuning"))
    # a choice that only a later trial draws fails that trial, not the study
    result = await tune(fastdb, "flowers", {"layers": [1, 0]}, n_trials=2, study="partly-bad", epochs=1, n_jobs=1)
    states = sorted(t["state"] for t in result.trials if t["state"] != "complete")
    assert all(t["error"] for t in result.trials if t["state"] == "fail") and set(states) <= {"fail"}


CHILD = """
import asyncio, sys
import qstore
from qstore.training import tune
async def main():
    async with await qstore.Database.open(sys.argv[1], sync=False, sweep_interval=None) as db:
        await tune(db, "flowers", {space!r}, n_trials=30, study="crash", epochs=2, n_jobs=1)
asyncio.run(main())
"""


async def test_a_study_killed_midway_resumes_without_repeating_finished_trials(tmp_path, reference) -> None:
    data = reference("iris-binary")
    path = str(tmp_path / "db")
    async with await qstore.Database.open(path, sync=False, sweep_interval=None) as db:
        await db.import_dataset("flowers", data.X_train, data.y_train)
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(space=SPACE), path], stderr=subprocess.PIPE)
    journal = os.path.join(path, "tuning", "crash.journal")
    storage = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and child.poll() is None:
            if os.path.exists(journal):
                storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(journal))
                try:
                    trials = optuna.load_study(study_name="crash", storage=storage).trials
                except KeyError:
                    trials = []
                if sum(t.state.is_finished() for t in trials) >= 2:
                    break
            time.sleep(0.05)
        assert child.poll() is None, child.stderr.read().decode()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL
    before = {t.number: (t.state, t.params, t.value)
              for t in optuna.load_study(study_name="crash", storage=storage).trials}
    finished_before = {n for n, (state, _, _) in before.items() if state.is_finished()}
    assert 2 <= len(finished_before) < 30

    async with await qstore.Database.open(path, sync=False, sweep_interval=None) as db:
        result = await tune(db, "flowers", SPACE, n_trials=len(finished_before) + 1, study="crash", epochs=2)
    after = {t["number"]: t for t in result.trials}
    for n in finished_before:                      # finished trials are kept as they were, not rerun
        state, params, value = before[n]
        assert after[n]["state"] == state.name.lower() and after[n]["params"] == params
        assert after[n]["score"] == value
    new = [t for n, t in after.items() if n not in before]
    assert len(new) == 1 and all(t["state"] in ("complete", "pruned") for t in new)
    interrupted = [n for n, (state, _, _) in before.items() if not state.is_finished()]
    assert all(after[n]["state"] == "fail" for n in interrupted)
    if interrupted:      # the interrupted configuration (as far as it was drawn) ran again first
        assert before[interrupted[0]][1].items() <= new[0]["params"].items()


def test_tune_command_prints_every_trial_and_the_best(tmp_path, reference, capsys) -> None:
    import argparse
    import asyncio
    import json

    from qstore.training.tune_command import add_tune_parser

    data = reference("iris-binary")
    path = str(tmp_path / "data")

    async def load() -> None:
        async with await qstore.Database.open(path) as db:
            await db.import_dataset("flowers", data.X_train, data.y_train)

    asyncio.run(load())
    parser = argparse.ArgumentParser(prog="qstore")
    add_tune_parser(parser.add_subparsers(dest="command"))
    space = json.dumps({"lr": [0.05, 0.1], "layers": [1, 2]})
    args = parser.parse_args(["tune", "--data-dir", path, "--dataset", "flowers", "--space", space, "--trials", "4",
                              "--study", "cli", "--epochs", "2", "--no-progress"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["trial", "state", "accuracy", "epochs", "layers", "lr", "checkpoint"]
    assert [line.split()[0] for line in lines[1:5]] == ["0", "1", "2", "3"]
    assert lines[-1].startswith("best: ") and "cli-t000" in lines[-1]
    args = parser.parse_args(["tune", "--data-dir", path, "--dataset", "flowers", "--space", '{"lr": []}'])
    assert args.func(args) == 2 and "no choices" in capsys.readouterr().err
