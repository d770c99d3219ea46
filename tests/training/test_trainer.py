"""The Trainer's contract: streaming from LMDB, history, progress, stopping, the event loop, bad input."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from qstore.training import VQC, Trainer
from qstore_client.errors import Cancelled, InvalidArgument, LimitExceeded, NotFound


@pytest.fixture
async def binary_db(fastdb, reference):
    data = reference("iris-binary")
    await fastdb.import_dataset("flowers", data.X_train, data.y_train)
    return fastdb


async def test_streamed_batches_equal_the_same_rows_in_memory(binary_db, reference) -> None:
    """The database path (shuffled batches fetched by id) trains exactly like the arrays themselves."""
    data = reference("iris-binary")
    from_db = Trainer(binary_db, VQC(4, 2, 2), batch_size=8, seed=5)
    h_db = await from_db.fit("flowers", epochs=3)
    stored = data.X_train.astype(np.float32)                 # the collection keeps float32 vectors
    in_memory = Trainer(None, VQC(4, 2, 2), batch_size=8, seed=5)
    h_mem = await in_memory.fit((stored, data.y_train), epochs=3)
    np.testing.assert_array_equal(from_db.model.params, in_memory.model.params)
    assert h_db["loss"] == h_mem["loss"]


async def test_history_has_per_epoch_metrics_and_validation(binary_db, reference) -> None:
    data = reference("iris-binary")
    trainer = Trainer(binary_db, VQC(4, 1, 2), batch_size=16, seed=0)
    history = await trainer.fit("flowers", epochs=3, validation=(data.X_test, data.y_test))
    assert set(history) == {"epoch", "loss", "accuracy", "grad_norm", "time", "samples_per_s",
                            "val_loss", "val_accuracy"}
    assert history["epoch"] == [1.0, 2.0, 3.0]
    assert all(len(v) == 3 for v in history.values())
    assert all(t > 0 for t in history["time"]) and all(g > 0 for g in history["grad_norm"])
    assert history["val_accuracy"][-1] == await trainer.evaluate(data.X_test, data.y_test)
    # a validation dataset by name works too
    await binary_db.import_dataset("flowers-test", data.X_test, data.y_test)
    more = await trainer.fit("flowers", epochs=1, validation="flowers-test")
    assert len(more["val_accuracy"]) == 4
    assert await trainer.evaluate("flowers-test") == pytest.approx(more["val_accuracy"][-1], abs=0.05)


async def test_progress_reports_and_stop_request(binary_db) -> None:
    seen: list[float] = []
    trainer = Trainer(binary_db, VQC(4, 1, 2), batch_size=16, seed=0, run="stoppable")
    await trainer.fit("flowers", epochs=2, progress=lambda f, msg: seen.append(f))
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 2 * 5   # 70 rows / 16 = 5 batches

    calls = 0

    def stop_after_seven() -> bool:
        nonlocal calls
        calls += 1
        return calls > 7

    with pytest.raises(Cancelled):
        await trainer.fit("flowers", epochs=5, checkpoint_every=1, should_stop=stop_after_seven)
    assert trainer.epoch == 3                                  # epoch 4 was cut off in its third batch
    assert trainer.checkpoints[-1] == "stoppable-e00003"
    assert (await binary_db.load_checkpoint("stoppable-e00003"))["epoch"] == 3


async def test_progress_bar_only_when_asked(binary_db, capsys) -> None:
    await Trainer(binary_db, VQC(4, 1, 2), seed=0, progress_bar=True).fit("flowers", epochs=1)
    assert "batch" in capsys.readouterr().err
    await Trainer(binary_db, VQC(4, 1, 2), seed=0, progress_bar=False).fit("flowers", epochs=1)
    assert capsys.readouterr().err == ""


async def test_fit_never_blocks_the_event_loop(fastdb, rng) -> None:
    X = rng.uniform(size=(256, 8))
    await fastdb.import_dataset("wide", X, (X.sum(axis=1) > 4).astype(int))
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    trainer = Trainer(fastdb, VQC(8, 4, 2), batch_size=64, seed=0)
    start = time.perf_counter()
    await trainer.fit("wide", epochs=80)                     # long enough to watch (~1 s)
    elapsed = time.perf_counter() - start
    done.set()
    await tick
    assert elapsed > 0.5
    assert max(gaps) < 0.1, (max(gaps), elapsed)               # ticks kept coming throughout training


async def test_parameter_shift_trains_the_same_as_adjoint(reference) -> None:
    data = reference("iris-binary")
    runs = []
    for gradient in ("adjoint", "parameter-shift"):
        trainer = Trainer(None, VQC(4, 2, 2), gradient=gradient, batch_size=16, seed=0)
        await trainer.fit((data.X_train, data.y_train), epochs=2)
        runs.append(trainer.model.params)
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-8)


# -- bad input: typed errors with stable codes -------------------------------------------------

async def test_labels_that_do_not_match_n_classes(binary_db, reference) -> None:
    data = reference("iris")
    with pytest.raises(InvalidArgument) as info:
        await Trainer(None, VQC(4, 1, 2)).fit((data.X_train, data.y_train))       # 3 classes, model has 2
    assert info.value.code == "invalid_labels"
    await binary_db.import_dataset("three", data.X_train, data.y_train)
    with pytest.raises(InvalidArgument) as info:
        await Trainer(binary_db, VQC(4, 1, 2)).fit("three")
    assert info.value.code == "invalid_labels"
    trainer = Trainer(binary_db, VQC(4, 1, 2))
    await trainer.fit("flowers")
    with pytest.raises(InvalidArgument) as info:
        await trainer.evaluate(data.X_test, data.y_test)                           # label 2 is unknown
    assert info.value.code == "invalid_labels"
    with pytest.raises(InvalidArgument) as info:
        await Trainer(None, VQC(4, 1, 2)).fit((data.X_train[:4], [0, 1, 0]))       # one label short
    assert info.value.code == "invalid_labels"
    with pytest.raises(InvalidArgument) as info:
        await Trainer(None, VQC(4, 1, 2)).fit((data.X_train[:3], [0.0, np.nan, 1.0]))
    assert info.value.code == "invalid_labels"


async def test_nan_features_and_empty_data(fastdb, rng) -> None:
    X = rng.uniform(size=(6, 2))
    X[2, 1] = np.nan
    with pytest.raises(InvalidArgument) as info:
        await Trainer(None, VQC(2, 1, 2)).fit((X, [0, 1] * 3))
    assert info.value.code == "invalid_features"
    with pytest.raises(InvalidArgument) as info:
        await Trainer(None, VQC(2, 1, 2)).fit((np.empty((0, 2)), np.empty(0)))
    assert info.value.code == "empty_dataset"
    col = await fastdb.import_dataset("emptied", rng.uniform(size=(3, 2)), [0, 1, 0])
    await col.delete([r.id for r in (await col.scroll(limit=10)).records])
    with pytest.raises(InvalidArgument) as info:
        await Trainer(fastdb, VQC(2, 1, 2)).fit("emptied")
    assert info.value.code == "empty_dataset"
    with pytest.raises(InvalidArgument) as info:
        await Trainer(None, VQC(2, 1, 2)).fit((rng.uniform(size=(4, 3)), [0, 1, 0, 1]))   # 3 features, 2 qubits
    assert info.value.code == "invalid_features"
    with pytest.raises(NotFound):
        await Trainer(fastdb, VQC(2, 1, 2)).fit("no-such-dataset")


def test_unknown_names_and_bad_settings() -> None:
    cases = [
        (dict(optimizer="rmsprop"), "unknown_optimizer"),
        (dict(gradient="guess"), "unknown_gradient"),
        (dict(backend="abacus"), "unknown_backend"),
        (dict(backend="cirq", gradient="adjoint"), "unknown_gradient"),
        (dict(batch_size=0), "invalid_argument"),
        (dict(lr=-1.0), "invalid_argument"),
        (dict(optimizer="qng", optimizer_options={"metric": "whole"}), "invalid_argument"),
    ]
    for kwargs, code in cases:
        with pytest.raises(InvalidArgument) as info:
            Trainer(None, VQC(2, 1, 2), **kwargs)
        assert info.value.code == code, kwargs
    with pytest.raises(InvalidArgument) as info:
        VQC(2, 1, 5)                                   # 5 classes need 5 readout qubits
    assert info.value.code == "invalid_argument"


def test_qng_needs_the_exact_metric() -> None:
    with pytest.raises(InvalidArgument):
        Trainer(None, VQC(4, 1, 2), optimizer="qng", backend="cirq", gradient="parameter-shift")


async def test_too_many_qubits_is_refused_before_allocating() -> None:
    trainer = Trainer(None, VQC(30, 1, 2), batch_size=4, backend_options={"max_memory_bytes": 1 << 26})
    with pytest.raises(LimitExceeded):
        await trainer.fit((np.random.default_rng(0).uniform(size=(4, 30)), [0, 1, 0, 1]))
