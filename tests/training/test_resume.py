"""Checkpoints: exact resume (same parameters and RNG stream), contents, and the DB checkpoint API."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.training import VQC, HybridModel, Trainer
from qstore.training.rng_state import restore_rng
from qstore_client.errors import Conflict, NotFound

OPTIMIZERS = {
    "adam": {},
    "sgd": {"momentum": 0.9},
    "qng": {"metric": "block", "lam": 0.01},
    "tunneling": {"jump_every": 3},
}


@pytest.fixture
async def iris_db(fastdb, reference):
    data = reference("iris")
    await fastdb.import_dataset("iris", data.X_train, data.y_train)
    return fastdb


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
async def test_fit_10_equals_fit_5_resume_fit_5(iris_db, optimizer) -> None:
    options = OPTIMIZERS[optimizer]
    straight = Trainer(iris_db, VQC(4, 2, 3), optimizer=optimizer, lr=0.05, batch_size=16, seed=3,
                       optimizer_options=options)
    full = await straight.fit("iris", epochs=10, checkpoint_every=5)

    first = Trainer(iris_db, VQC(4, 2, 3), optimizer=optimizer, lr=0.05, batch_size=16, seed=3,
                    optimizer_options=options, run="halves")
    await first.fit("iris", epochs=5, checkpoint_every=5)
    halfway = first.checkpoints[-1]

    # A fresh process would start here: new model, different seed, nothing in memory.
    second = Trainer(iris_db, VQC(4, 2, 3), optimizer=optimizer, lr=0.05, batch_size=16, seed=12345,
                     optimizer_options=options)
    await second.resume(halfway)
    resumed = await second.fit("iris", epochs=5)

    np.testing.assert_allclose(second.model.params, straight.model.params, rtol=0, atol=1e-12)
    assert second.epoch == straight.epoch == 10
    assert resumed["loss"] == full["loss"] and resumed["accuracy"] == full["accuracy"]
    # the RNG stream continues identically too
    assert second.rng.bit_generator.state == straight.rng.bit_generator.state
    # and the checkpoint at epoch 5 of the uninterrupted run is the same state
    mid = await iris_db.load_checkpoint(straight.checkpoints[0])
    np.testing.assert_array_equal(mid["params"], (await iris_db.load_checkpoint(halfway))["params"])


async def test_hybrid_model_resumes_exactly(fastdb, reference) -> None:
    data = reference("moons", None)
    await fastdb.import_dataset("moons", data.X_train, data.y_train)

    def make() -> Trainer:
        return Trainer(fastdb, HybridModel(2, 2, 2, hidden=(4,)), lr=0.05, batch_size=32, seed=1)

    a = make()
    await a.fit("moons", epochs=4, checkpoint_every=2)
    b = make()
    await b.resume(a.checkpoints[0])
    await b.fit(epochs=2)                      # the dataset name comes from the checkpoint
    np.testing.assert_allclose(b.model.params, a.model.params, rtol=0, atol=1e-12)


async def test_checkpoint_holds_everything_and_lists_by_run(iris_db) -> None:
    trainer = Trainer(iris_db, VQC(4, 1, 3), lr=0.05, batch_size=32, seed=0, run="run-a")
    history = await trainer.fit("iris", epochs=3, checkpoint_every=2)
    assert trainer.checkpoints == ["run-a-e00002", "run-a-e00003"]          # every 2, and the last
    doc = await iris_db.load_checkpoint("run-a-e00003")
    assert doc["kind"] == "checkpoint" and doc["epoch"] == 3 and doc["dataset"] == "iris"
    assert doc["params"].dtype == np.float64
    np.testing.assert_array_equal(doc["params"], trainer.model.params)
    assert doc["optimizer"]["name"] == "adam" and doc["optimizer"]["state"]["t"] == trainer.step
    assert restore_rng(doc["rng"]).bit_generator.state == trainer.rng.bit_generator.state
    assert doc["metrics"]["loss"] == history["loss"]
    assert doc["model"]["config"] == trainer.model.config() and doc["model"]["state"]["classes"] == [0, 1, 2]
    assert len(doc["config_hash"]) == 64

    summaries = await iris_db.list_checkpoints(run="run-a")
    assert [s["id"] for s in summaries] == ["run-a-e00002", "run-a-e00003", "run-a-metrics"]
    record = summaries[-1]
    assert record["kind"] == "run" and record["metrics"]["loss"] == history["loss"]
    assert record["latest_checkpoint"] == "run-a-e00003"

    await iris_db.delete_checkpoint("run-a-e00002")
    with pytest.raises(NotFound):
        await iris_db.load_checkpoint("run-a-e00002")


async def test_metrics_are_recorded_every_epoch_without_checkpoints(iris_db) -> None:
    trainer = Trainer(iris_db, VQC(4, 1, 3), lr=0.05, batch_size=32, seed=0, run="no-ckpt")
    await trainer.fit("iris", epochs=2)
    record = await iris_db.load_checkpoint("no-ckpt-metrics")
    assert record["epoch"] == 2 and len(record["metrics"]["accuracy"]) == 2 and record["checkpoints"] == []


async def test_resume_refuses_a_different_setup(iris_db) -> None:
    trainer = Trainer(iris_db, VQC(4, 1, 3), lr=0.05, batch_size=32, seed=0, run="orig")
    await trainer.fit("iris", epochs=1, checkpoint_every=1)
    for other in (Trainer(iris_db, VQC(4, 2, 3), lr=0.05, batch_size=32),          # another circuit
                  Trainer(iris_db, VQC(4, 1, 3), lr=0.01, batch_size=32),          # another step size
                  Trainer(iris_db, VQC(4, 1, 3), optimizer="sgd", lr=0.05, batch_size=32)):
        with pytest.raises(Conflict) as info:
            await other.resume("orig-e00001")
        assert info.value.code == "checkpoint_mismatch"
    with pytest.raises(Conflict):
        await Trainer(iris_db, VQC(4, 1, 3), lr=0.05, batch_size=32).resume("orig-metrics")
    rebuilt = await Trainer.from_checkpoint(iris_db, "orig-e00001")
    np.testing.assert_array_equal(rebuilt.model.params, trainer.model.params)
    assert rebuilt.epoch == 1 and rebuilt.run == "orig"
