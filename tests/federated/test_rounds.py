"""Coordinator behaviour with in-process participants: checkpoints, deadlines, bad replies, sampling, FedProx."""
from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from qstore.federated import (
    Coordinator,
    LocalParticipant,
    Proximal,
    RoundTask,
    Summary,
    Update,
    make_strategy,
    train_local,
)
from qstore.training import VQC
from qstore.training.optimizers import StepResult
from qstore.training.registry import get_optimizer
from qstore.training.trainer import BatchObjective
from qstore_client import InvalidArgument, Unavailable


def local(split, shards: str = "iid") -> list[LocalParticipant]:
    return [LocalParticipant((split.X_train[s], split.y_train[s]), name=f"p{i}")
            for i, s in enumerate(getattr(split, shards))]


class Slow:
    """Answers only after `delay` seconds: a straggler."""

    def __init__(self, inner: LocalParticipant, delay: float):
        self.inner, self.delay, self.name = inner, delay, "slow"

    async def summary(self, dataset: str) -> Summary:
        return await self.inner.summary(dataset)

    async def fit(self, task: RoundTask) -> Update:
        await asyncio.sleep(self.delay)
        return await self.inner.fit(task)

    async def close(self) -> None:
        await self.inner.close()


class Broken:
    """A participant whose replies are wrong in one way each (an outside actor with bugs)."""

    def __init__(self, inner: LocalParticipant, fault: str):
        self.inner, self.fault, self.name = inner, fault, f"broken-{fault}"

    async def summary(self, dataset: str) -> Summary:
        return await self.inner.summary(dataset)

    async def fit(self, task: RoundTask):
        update = await self.inner.fit(task)
        if self.fault == "shape":
            update.delta = update.delta[:-1]
        elif self.fault == "nan":
            update.delta[0] = np.nan
        elif self.fault == "round":
            update.round += 1
        elif self.fault == "count":
            update.n = -5
        elif self.fault == "garbage":
            return {"delta": "all of my data", "rows": update.delta.tolist()}
        elif self.fault == "crash":
            raise RuntimeError("participant process crashed")
        return update

    async def close(self) -> None:
        await self.inner.close()


async def test_fedavg_trains_in_place_and_checkpoints_every_round(split, db):
    model = VQC(4, 2, 2)
    coord = Coordinator(local(split), rounds=6, local_epochs=2, seed=0, db=db, run="fl-test")
    history = await coord.run(model, validation=(split.X_test, split.y_test))
    assert [h.round for h in history] == list(range(1, 7))
    assert all(h.status == "aggregated" and len(h.participants) == 4 for h in history)
    assert all(h.samples == len(split.X_train) for h in history)
    assert history[-1].accuracy > 0.85 and history[-1].accuracy > history[0].accuracy - 0.01
    assert all({"loss", "accuracy"} <= set(m) for m in history[-1].local.values())
    docs = await db.list_checkpoints(run="fl-test")
    assert [d["round"] for d in docs] == list(range(1, 7))
    last = await db.load_checkpoint(history[-1].checkpoint)
    np.testing.assert_array_equal(last["params"], model.params)
    assert last["kind"] == "federated" and last["metrics"]["accuracy"] == history[-1].accuracy
    # The round record travels with the checkpoint (the web console's participant table reads it).
    assert last["record"]["counts"] == history[-1].counts and sum(history[-1].counts.values()) == len(split.X_train)
    assert last["record"]["local"] == history[-1].local and last["record"]["excluded"] == {}
    # The scaler came from the participants' merged statistics: what centralised training would fit.
    np.testing.assert_allclose(model.scaler.offset, split.X_train.min(axis=0))


async def test_participants_in_embedded_databases(split, tmp_path):
    import qstore

    dbs = [await qstore.Database.open(str(tmp_path / f"n{i}")) for i in range(3)]
    try:
        for db, rows in zip(dbs, np.array_split(np.arange(len(split.X_train)), 3)):
            await db.import_dataset("private", split.X_train[rows], split.y_train[rows])
        parts = [LocalParticipant(db, name=f"db{i}") for i, db in enumerate(dbs)]
        history = await Coordinator(parts, dataset="private", rounds=3, local_epochs=2).run(
            VQC(4, 2, 2), validation=(split.X_test, split.y_test))
        assert all(h.status == "aggregated" for h in history) and history[-1].accuracy > 0.8
    finally:
        for db in dbs:
            await db.close()


async def test_straggler_never_holds_a_round_past_its_deadline(split):
    parts = local(split)
    parts[3] = Slow(parts[3], delay=60)
    start = time.monotonic()
    history = await Coordinator(parts, rounds=2, deadline_s=1.5, min_participants=2).run(
        VQC(4, 2, 2), validation=(split.X_test, split.y_test))
    assert time.monotonic() - start < 2 * 1.5 + 5
    for h in history:
        assert h.status == "aggregated" and "slow" not in h.participants
        assert h.excluded == {"slow": "late: no update within the deadline"}
        assert 1.4 < h.seconds < 1.5 + 2.5


async def test_round_closes_once_enough_updates_arrived(split):
    parts = [*local(split), Slow(LocalParticipant((split.X_train[:20], split.y_train[:20])), delay=60)]
    history = await Coordinator(parts, rounds=1, deadline_s=60, target_updates=4).run(VQC(4, 2, 2))
    assert history[0].seconds < 10 and len(history[0].participants) == 4
    assert history[0].excluded["slow"] == "late: the round already had enough updates"


async def test_bad_updates_are_left_out_never_crash(split):
    faults = ["shape", "nan", "round", "count", "garbage", "crash"]
    extra = LocalParticipant((split.X_train[:40], split.y_train[:40]), name="extra")
    parts = local(split)[:3] + [Broken(extra, f) for f in faults]
    history = await Coordinator(parts, rounds=3, local_epochs=2, min_participants=3).run(
        VQC(4, 2, 2), validation=(split.X_test, split.y_test))
    for h in history:
        assert h.status == "aggregated" and sorted(h.participants) == ["p0", "p1", "p2"]
        assert set(h.excluded) == {f"broken-{f}" for f in faults}
    reasons = history[0].excluded
    assert "expected shape (" in reasons["broken-shape"] and "NaN" in reasons["broken-nan"]
    assert "round 2, this is round 1" in reasons["broken-round"] and "unknown_field" in reasons["broken-garbage"]
    assert "RuntimeError" in reasons["broken-crash"]
    assert history[-1].accuracy > 0.8


async def test_no_valid_update_at_all_is_a_clear_error(split, dead_url):
    extra = LocalParticipant((split.X_train[:40], split.y_train[:40]), name="extra")
    parts = [Broken(extra, "nan"), Broken(extra, "crash"), dead_url]
    model = VQC(4, 2, 2)
    with pytest.raises(Unavailable) as exc:
        await Coordinator(parts, rounds=2, deadline_s=5).run(model, validation=(split.X_test, split.y_test))
    assert exc.value.code == "unavailable" and "min_participants=2" in exc.value.message


async def test_unreachable_participant_is_left_out(split, dead_url):
    history = await Coordinator([*local(split)[:3], dead_url], rounds=2, deadline_s=10).run(
        VQC(4, 2, 2), validation=(split.X_test, split.y_test))
    for h in history:
        assert h.status == "aggregated" and len(h.participants) == 3
        assert h.excluded[dead_url].startswith("unavailable:")


async def test_poisson_sampling_is_random_and_reproducible(split):
    shards = np.array_split(np.arange(len(split.X_train)), 8)
    def parts() -> list[LocalParticipant]:
        return [LocalParticipant((split.X_train[s], split.y_train[s]), name=f"p{i}") for i, s in enumerate(shards)]
    runs = [await Coordinator(parts(), rounds=6, sampling="poisson", fraction=0.5, min_participants=1,
                              seed=11).run(VQC(4, 2, 2)) for _ in range(2)]
    sizes = [len(h.selected) for h in runs[0]]
    assert len(set(sizes)) > 1                                # the round size varies
    assert [h.selected for h in runs[0]] == [h.selected for h in runs[1]]
    fixed = await Coordinator(parts(), rounds=3, fraction=0.5, seed=11).run(VQC(4, 2, 2))
    assert all(len(h.selected) == 4 for h in fixed) and len({tuple(h.selected) for h in fixed}) > 1


def test_proximal_objective_adds_mu_times_the_distance(split):
    model = VQC(4, 2, 2)
    from qstore.training.data import DataSummary, FeatureStats
    stats = FeatureStats.of(split.X_train)
    model.bind_features(4)
    model.scaler.fit(stats)
    model.fit_targets(DataSummary.of(4, stats, split.y_train))
    rng = np.random.default_rng(0)
    anchor, w = model.init_params(rng), model.init_params(rng)
    objective = BatchObjective(model, model.features(split.X_train[:16]), model.targets(split.y_train[:16]))
    plain_loss, plain_grad = objective.value_and_grad(w)
    captured = {}

    class Spy:
        """Records what the optimizer was asked to minimise."""
        name, lr, state = "spy", 0.1, None

        def step(self, obj, params):
            captured["value"] = obj.value_and_grad(params)
            return StepResult(params, *captured["value"])

    Proximal(Spy(), anchor, mu=0.5).step(objective, w)
    loss, grad = captured["value"]
    assert loss == pytest.approx(plain_loss + 0.25 * float((w - anchor) @ (w - anchor)))
    np.testing.assert_allclose(grad, plain_grad + 0.5 * (w - anchor))
    assert Proximal(get_optimizer("adam", 0.05), anchor, 0.5).hyperparameters()["mu"] == 0.5


def test_train_local_returns_only_a_delta(split):
    model = VQC(4, 2, 2, n_features=4)
    from qstore.training.data import DataSummary, FeatureStats
    stats = FeatureStats.of(split.X_train)
    model.scaler.fit(stats)
    model.fit_targets(DataSummary.of(4, stats, split.y_train))
    params = model.init_params(np.random.default_rng(0))
    task = RoundTask(round=1, params=params, model=model.config(), state=model.state(), epochs=2, mu=0.1)
    update = train_local(task, split.X_train[:60], split.y_train[:60])
    assert set(update.to_wire()) == {"round", "delta", "n", "metrics", "seconds", "steps"}
    assert update.steps == 2 * 2  # 2 epochs of ceil(60 / 32) batches
    assert update.n == 60 and update.delta.shape == params.shape and np.abs(update.delta).max() > 0
    again = train_local(task, split.X_train[:60], split.y_train[:60])
    np.testing.assert_array_equal(update.delta, again.delta)   # the task's seed fixes the shuffles
    with pytest.raises(InvalidArgument) as exc:
        train_local(RoundTask(**{**task.__dict__, "params": params[:-1]}), split.X_train[:60], split.y_train[:60])
    assert exc.value.code == "invalid_parameters"


@pytest.mark.parametrize("strategy, options", [("fedprox", {"mu": 0.1}), ("circular", {})])
async def test_fedprox_and_circular_converge_on_label_skew(split, strategy, options):
    history = await Coordinator(local(split, "skew"), strategy=strategy, strategy_options=options, rounds=12,
                                local_epochs=2).run(VQC(4, 2, 2), validation=(split.X_test, split.y_test))
    assert history[-1].accuracy > 0.85, [h.accuracy for h in history]
    assert make_strategy(strategy, **options).mu == options.get("mu", 0.0)


@pytest.mark.parametrize("kwargs", [{"rounds": 0}, {"local_epochs": -1}, {"deadline_s": 0}, {"fraction": 1.5},
                                    {"fraction": 0.25}, {"sampling": "lottery"}, {"min_participants": 9},
                                    {"target_updates": 1}, {"batch_size": 0}])
def test_bad_coordinator_arguments(split, kwargs):
    with pytest.raises(InvalidArgument):
        Coordinator(local(split), **kwargs)
    with pytest.raises(InvalidArgument):
        Coordinator([])
    with pytest.raises(InvalidArgument):
        Coordinator(["ftp://somewhere"])
    with pytest.raises(InvalidArgument):
        Coordinator(["http://a:1", "http://a:1"])
