"""Training as a server job: a real ``python -m qstore_server`` subprocess driven by the async client."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from qstore_client import AsyncClient
from qstore_client.errors import InvalidArgument

VQC_4 = {"type": "vqc", "n_qubits": 4, "layers": 2, "n_classes": 2}


async def test_train_job_runs_and_its_checkpoints_are_readable(server, reference) -> None:
    data = reference("iris-binary")
    async with AsyncClient(server.url) as client:
        assert "train" in await client.job_kinds()
        await client.import_dataset("job-flowers", data.X_train, data.y_train)
        job = await client.start_job("train", {"dataset": "job-flowers", "model": VQC_4, "epochs": 6,
                                               "batch_size": 16, "checkpoint_every": 3, "run": "job-a",
                                               "seed": 1, "lr": 0.05})
        done = await client.wait_job(job.id, timeout=120)
        assert done.state == "succeeded", done.error
        assert done.progress == 1.0
        result = await client.job_result(job.id)
        assert result["run"] == "job-a" and result["epochs"] == 6
        assert result["checkpoints"] == ["job-a-e00003", "job-a-e00006"]
        assert len(result["history"]["loss"]) == 6 and result["history"]["accuracy"][-1] >= 0.9

        ckpt = await client.load_checkpoint(result["latest_checkpoint"])
        assert ckpt["epoch"] == 6 and ckpt["run"] == "job-a" and ckpt["dataset"] == "job-flowers"
        assert isinstance(ckpt["params"], np.ndarray) and ckpt["params"].dtype == np.float64
        assert ckpt["model"]["config"]["n_qubits"] == 4 and isinstance(ckpt["rng"], str)
        ids = [c["id"] for c in await client.list_checkpoints(run="job-a")]
        assert ids == ["job-a-e00003", "job-a-e00006", "job-a-metrics"]

        # a second job resumes the run where the first stopped
        again = await client.start_job("train", {"resume": "job-a-e00006", "epochs": 2})
        assert (await client.wait_job(again.id, timeout=120)).state == "succeeded"
        resumed = await client.job_result(again.id)
        assert resumed["run"] == "job-a" and resumed["epochs"] == 8
        assert len(resumed["history"]["loss"]) == 8
        assert resumed["history"]["loss"][:6] == result["history"]["loss"]


async def test_train_job_reports_progress_and_can_be_cancelled(server, rng) -> None:
    X = rng.uniform(size=(512, 8))
    y = (np.sin(6 * X[:, 0]) + X[:, 1] > 0.8).astype(int)
    async with AsyncClient(server.url) as client:
        await client.import_dataset("job-wide", X, y)
        job = await client.start_job("train", {"dataset": "job-wide", "epochs": 10_000, "batch_size": 8,
                                               "checkpoint_every": 1, "run": "job-long",
                                               "model": {"type": "vqc", "n_qubits": 8, "layers": 6,
                                                         "n_classes": 2}})
        for _ in range(600):                             # until the first epoch is checkpointed
            status = await client.job(job.id)
            if status.state == "running" and any(c["id"] == "job-long-e00001"
                                                 for c in await client.list_checkpoints(run="job-long")):
                break
            await asyncio.sleep(0.05)
        assert status.state == "running" and 0 < status.progress < 1
        assert "epoch" in status.message and "loss" in status.message
        # the server keeps answering while the job trains
        assert (await client.health())["status"] == "ok"

        await client.cancel_job(job.id)
        final = await client.wait_job(job.id, timeout=60)
        assert final.state == "cancelled" and final.error.code == "cancelled"
        ckpt = await client.load_checkpoint("job-long-e00001")
        assert ckpt["epoch"] == 1 and ckpt["params"].shape == (8 * 6 * 3 + 2,)


@pytest.mark.parametrize("params, code", [
    ({"dataset": "x", "model": VQC_4, "optimizer": "rmsprop"}, "unknown_optimizer"),
    ({"dataset": "x", "model": VQC_4, "gradient": "guess"}, "unknown_gradient"),
    ({"dataset": "x", "model": VQC_4, "backend": "abacus"}, "unknown_backend"),
    ({"model": VQC_4}, "missing_field"),
    ({"dataset": "x", "model": VQC_4, "colour": "red"}, "unknown_field"),
    ({"dataset": "x", "model": {"type": "vqc", "n_qubits": 2, "layers": 1, "n_classes": 5}}, "invalid_argument"),
])
async def test_bad_train_params_are_refused_at_start(server, params, code) -> None:
    async with AsyncClient(server.url) as client:
        with pytest.raises(InvalidArgument) as info:
            await client.start_job("train", params)
        assert info.value.code == code


async def test_a_failing_dataset_fails_the_job_with_its_code(server) -> None:
    async with AsyncClient(server.url) as client:
        job = await client.start_job("train", {"dataset": "never-imported", "model": VQC_4})
        final = await client.wait_job(job.id, timeout=60)
        assert final.state == "failed" and final.error.code == "not_found"


async def test_a_trainer_on_the_client_matches_one_on_the_embedded_database(server, fastdb, reference) -> None:
    """``Trainer`` is typed against ``QStoreAPI``: given an ``AsyncClient`` it reads the dataset and
    writes checkpoints over the wire, and trains exactly as on a ``qstore.Database``."""
    from qstore.training import VQC, Trainer

    data = reference("iris-binary")
    await fastdb.import_dataset("twin", data.X_train, data.y_train)
    runs = []
    async with AsyncClient(server.url) as client:
        await client.import_dataset("twin", data.X_train, data.y_train)
        for db in (fastdb, client):
            trainer = Trainer(db, VQC(4, 2, 2), batch_size=16, seed=3, run="twin")
            history = await trainer.fit("twin", epochs=2, checkpoint_every=2)
            saved = await db.load_checkpoint(trainer.checkpoints[-1])
            runs.append((trainer.model.params, history["loss"], saved["epoch"]))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    assert runs[0][1:] == runs[1][1:]
