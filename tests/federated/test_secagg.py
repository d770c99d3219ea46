"""Secure aggregation: the coordinator learns the sum of the finished participants' updates, nothing else.

Participants are real ``LocalParticipant`` objects training on breast-cancer shards; ``Tap``
sits on the wire between them and the coordinator, keeps everything the coordinator
receives, and can make a participant drop out at a given stage. The expected aggregate is
recomputed independently: each survivor's round task is replayed through ``train_local``
and the deltas averaged with ``FedAvg``.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest
from scipy import stats

from qstore.federated import (
    Coordinator,
    FedAvg,
    LocalParticipant,
    RoundTask,
    Summary,
    Update,
    secagg,
    shamir,
    train_local,
    wrap,
)
from qstore.training import VQC
from qstore_client import InvalidArgument
from qstore_client import errors as qstore_errors
from tests.federated.conftest import make_split

N = 10


class Tap:
    """A participant on a recorded wire; raises at `drop_at` as a node that went away would."""

    def __init__(self, inner: LocalParticipant, drop_at: str | None = None):
        self.inner, self.name, self.drop_at = inner, inner.name, drop_at
        self.received: list[tuple[str, dict]] = []  # what the coordinator got back, stage by stage
        self.tasks: list[RoundTask] = []

    async def summary(self, dataset: str) -> Summary:
        return await self.inner.summary(dataset)

    async def fit(self, task: RoundTask) -> Update:
        return await self.inner.fit(task)

    async def secure(self, message: dict) -> dict:
        if message["stage"] == self.drop_at:
            raise ConnectionError(f"{self.name} went away")
        if message["stage"] == "train":
            self.tasks.append(message["task"])
        answer = await self.inner.secure(message)
        self.received.append((message["stage"], answer))
        return answer

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture(scope="module")
def split10():
    return make_split(N)


def taps(split, drop: dict[int, str] | None = None) -> list[Tap]:
    drop = drop or {}
    return [Tap(LocalParticipant((split.X_train[s], split.y_train[s]), name=f"p{i}"), drop.get(i))
            for i, s in enumerate(split.iid)]


def assert_moved_by(model: VQC, start: np.ndarray, step: np.ndarray) -> None:
    """The global model moved by `step`, to the ring's rounding (angles compared modulo 2π)."""
    np.testing.assert_allclose(wrap(model.params - start - step), 0.0, atol=1e-6, rtol=0)


def replay(split, parts: list[Tap]) -> list[Update]:
    """Each participant's true round-1 update, recomputed from its task (training is seeded)."""
    return [train_local(p.tasks[0], split.X_train[s], split.y_train[s]) for p, s in zip(parts, split.iid)]


async def expected_step(split, parts: list[Tap], survivors: list[str]) -> np.ndarray:
    """FedAvg over the survivors' updates."""
    every = await asyncio.to_thread(replay, split, parts)
    updates = [u for p, u in zip(parts, every) if p.name in survivors]
    return FedAvg().aggregate(parts[0].tasks[0].params, np.stack([u.delta for u in updates]),
                              np.array([u.n for u in updates]), 0)


async def secure_round(split, parts: list[Tap], **options):
    model = VQC(4, 2, 2)
    coord = Coordinator(parts, rounds=1, local_epochs=1, seed=3, secure_aggregation=True, **options)
    history = await coord.run(model)
    return model, history[0]


async def test_secure_round_equals_fedavg_to_quantisation_error(split10):
    parts = taps(split10)
    model, record = await secure_round(split10, parts)
    assert record.status == "aggregated" and record.participants == [p.name for p in parts]
    assert record.secure["threshold"] == N // 2 + 1 and record.samples == len(split10.X_train)
    # stochastic rounding at 2^-24 per value; the n-weighted sum divided by Σn
    assert_moved_by(model, parts[0].tasks[0].params, await expected_step(split10, parts, record.participants))


async def test_three_of_ten_drop_after_sharing_keys(split10):
    parts = taps(split10, {2: "masked_input", 5: "masked_input", 7: "masked_input"})
    model, record = await secure_round(split10, parts)
    survivors = [p.name for i, p in enumerate(parts) if i not in (2, 5, 7)]
    assert record.status == "aggregated" and record.participants == survivors
    assert set(record.excluded) == {"p2", "p5", "p7"}
    assert record.secure["stages"] == {"train": 10, "share_keys": 10, "masked_input": 7, "unmask": 7}
    # their pairwise masks were in everyone else's input; rebuilt from their Shamir-shared keys
    assert_moved_by(model, parts[0].tasks[0].params, await expected_step(split10, parts, survivors))


async def test_dropping_at_unmask_still_counts_its_input(split10):
    parts = taps(split10, {0: "unmask", 9: "unmask"})
    model, record = await secure_round(split10, parts)
    assert record.status == "aggregated" and len(record.participants) == N
    assert_moved_by(model, parts[0].tasks[0].params, await expected_step(split10, parts, record.participants))


async def test_fewer_than_threshold_left_skips_the_round(split10):
    parts = taps(split10, {i: "masked_input" for i in range(4)})
    model = VQC(4, 2, 2)
    coord = Coordinator(parts, rounds=2, seed=3, secure_aggregation={"threshold": 7})
    records: list = []
    coord.progress = lambda event, info: records.append(info["record"]) if event == "round_end" else None
    with pytest.raises(qstore_errors.Unavailable, match="no round gathered"):
        await coord.run(model)
    assert len(records) == 2
    for record in records:
        assert record.status == "skipped" and record.participants == []
        assert "6 participant(s) left after masked_input, fewer than the threshold t=7" in record.reason
    assert np.array_equal(model.params, parts[0].tasks[0].params)  # the model did not move


async def test_coordinator_sees_only_uniform_ring_elements_and_the_sum(split10):
    parts = taps(split10)
    model, record = await secure_round(split10, parts)
    masked = np.stack([a["y"] for p in parts for stage, a in p.received if stage == "masked_input"])
    # Everything else the coordinator received is public keys, ciphertexts and shares of other
    # participants' secrets: no float anywhere.
    for p in parts:
        for _stage, answer in p.received:
            assert not any(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in answer.values())
    # Each masked vector is uniform on Z_2^64: every 4-bit nibble of every word is uniform.
    nibbles = ((masked[..., None] >> (np.arange(16, dtype=np.uint64) * np.uint64(4))) & np.uint64(15)).ravel()
    chi2 = stats.chisquare(np.bincount(nibbles.astype(np.int64), minlength=16))
    assert chi2.pvalue > 1e-4
    # No single update shows through: decoding one masked vector gives noise of order 2^39,
    # uncorrelated with that participant's true weighted update.
    truth = [secagg.summands(u, "samples") for u in await asyncio.to_thread(replay, split10, parts)]
    for y, x in zip(masked, truth):
        decoded = secagg.decode(y, 24)
        assert np.median(np.abs(decoded)) > 1e6 > np.abs(x).max()
        assert abs(np.corrcoef(decoded, x)[0, 1]) < 0.9
    # ...yet the unmasked sum is right: the model moved by FedAvg of the true updates.
    total = np.sum(truth, axis=0)
    assert_moved_by(model, parts[0].tasks[0].params, total[:-1] / total[-1])


def test_shamir_any_t_shares_reconstruct_fewer_do_not():
    secret = bytes(range(32))
    shares = shamir.split(secret, [3, 4, 7, 9, 11], 3)
    assert shamir.combine(shares[:3], 3) == secret == shamir.combine(shares[2:], 3)
    assert shamir.combine([shares[0], shares[4], shares[2]], 3) == secret
    assert shamir.decode_share(shamir.encode_share(shares[1])) == shares[1]
    with pytest.raises(Exception, match="2 distinct share"):
        shamir.combine(shares[:2], 3)
    # two shares of a 3-of-n sharing of different secrets can be identical: they say nothing
    other = shamir.split(bytes(32), [3, 4, 7, 9, 11], 3)
    assert shamir.combine(other[:3], 3) == bytes(32)


def test_a_session_answers_unmask_once_and_refuses_out_of_order_stages():
    update = Update(round=1, delta=np.ones(3), n=5)
    store = secagg.SessionStore()
    store.start(secagg.client_for(secagg.start_message("s", 1, 2, 24, "samples", None), update))
    with pytest.raises(Exception, match="stage 'masked_input' after 'train'"):
        store.step({"stage": "masked_input", "session": "s", "shares": {}})
    assert len(store) == 0  # a protocol error ends the participant's part in the round
    with pytest.raises(Exception, match="no session"):
        store.step({"stage": "unmask", "session": "s", "survivors": [1]})


@pytest.mark.parametrize("strategy", ["median", "trimmed_mean", "krum", "geometric_median", "circular"])
def test_secure_aggregation_refuses_strategies_that_need_individual_updates(split10, strategy):
    options = {"f": 1} if strategy in ("median", "krum", "geometric_median") else {}
    with pytest.raises(InvalidArgument, match="needs the individual updates"):
        Coordinator(taps(split10), strategy=strategy, strategy_options=options, min_participants=5,
                    secure_aggregation=True)


def test_secure_aggregation_refuses_participants_without_its_stages(split10):
    class Plain:
        name = "plain"

        async def summary(self, dataset): ...

        async def fit(self, task): ...

        async def close(self): ...

    with pytest.raises(InvalidArgument, match="need participants that run its stages|do not: \\['plain'\\]"):
        Coordinator([*taps(split10)[:3], Plain()], secure_aggregation=True)
    with pytest.raises(InvalidArgument, match="threshold t=12 exceeds"):
        Coordinator(taps(split10), secure_aggregation={"threshold": 12})


async def test_secure_aggregation_with_central_dp_adds_noise_after_unmasking(split10):
    parts = taps(split10)
    model = VQC(4, 2, 2)
    coord = Coordinator(parts, rounds=2, seed=3, secure_aggregation=True,
                        dp={"mode": "central", "clip": 0.5, "noise_multiplier": 0.5})
    history = await coord.run(model, validation=(split10.X_test, split10.y_test))
    assert all(h.status == "aggregated" and h.epsilon is not None for h in history)
    assert history[1].epsilon > history[0].epsilon > 0


def test_malformed_secure_aggregation_messages_are_refused():
    update = Update(round=1, delta=np.ones(3), n=5)
    good = secagg.start_message("s", 1, 2, 24, "samples", None)
    for bad in ({**good, "weighting": "median"}, {**good, "frac_bits": 60}, {**good, "index": "1"},
                {**good, "extra": 1}, {**good, "weighting": "unit"}):
        with pytest.raises(InvalidArgument):
            secagg.client_for(bad, update)
    with pytest.raises(InvalidArgument, match="does not fit the fixed-point ring"):
        secagg.encode(np.array([2.0 ** 40]), 24)
    client = secagg.client_for(good, update)
    keys = {"1": {"c_pk": client.advertise()["c_pk"], "s_pk": client.advertise()["s_pk"]}}
    with pytest.raises(qstore_errors.Unavailable, match="threshold 2"):  # alone, below t
        client.share_keys(keys)
    for bad_config in ({"threshold": 1}, {"threshold": 1.5}, {"frac_bits": -1}, {"mask": "x"}, "yes"):
        with pytest.raises(InvalidArgument):
            secagg.SecAggConfig.of(bad_config)
