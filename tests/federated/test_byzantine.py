"""One Byzantine participant among seven: FedAvg degrades; median, trimmed mean, Krum, geometric median hold.

The attacker is an outside actor: it reports feature ranges a million times too wide
before the first round (to squash everyone's scaled features), then trains honestly on
its shard and sends either a sign-flipped, tenfold update (pulling the model uphill) or a
huge random one, claiming a large sample count to maximise its FedAvg weight.
"""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from qstore.federated import Coordinator, LocalParticipant, RoundTask, Summary, Update
from qstore.training import VQC

ROUNDS, EPOCHS, HONEST = 15, 2, 6


class Byzantine:
    def __init__(self, inner: LocalParticipant, attack: str):
        self.inner, self.attack, self.name = inner, attack, f"byzantine-{attack}"

    async def summary(self, dataset: str) -> Summary:
        honest = await self.inner.summary(dataset)
        honest.minimum, honest.maximum = honest.minimum * 1e6, honest.maximum * 1e6
        return honest

    async def fit(self, task: RoundTask) -> Update:
        update = await self.inner.fit(task)
        if self.attack == "flip":
            update.delta = -10.0 * update.delta
        else:
            update.delta = np.random.default_rng(task.seed).normal(0.0, 1e3, update.delta.shape)
        update.n = 10 * update.n
        return update

    async def close(self) -> None:
        await self.inner.close()


def participants(split, attack: str | None) -> list:
    shards = np.array_split(np.random.default_rng(0).permutation(len(split.X_train)), HONEST + 1)
    parts = [LocalParticipant((split.X_train[s], split.y_train[s]), name=f"p{i}") for i, s in enumerate(shards)]
    if attack is None:
        return parts[:HONEST]
    return parts[:HONEST] + [Byzantine(parts[HONEST], attack)]


async def final_accuracy(split, strategy: str, attack: str | None) -> float:
    coord = Coordinator(participants(split, attack), strategy=strategy, rounds=ROUNDS, local_epochs=EPOCHS,
                        min_participants=5, seed=0)
    history = await coord.run(VQC(4, 2, 2), validation=(split.X_test, split.y_test))
    if attack is not None:
        assert all(f"byzantine-{attack}" in h.participants for h in history)  # it was never just dropped
    return history[-1].accuracy


@pytest.fixture(scope="module")
def clean(split) -> float:
    """FedAvg over the six honest participants alone."""
    return asyncio.run(final_accuracy(split, "fedavg", None))


@pytest.mark.parametrize("attack", ["flip", "huge"])
@pytest.mark.parametrize("strategy", ["fedavg", "median", "trimmed_mean", "krum", "multi_krum", "geometric_median"])
async def test_byzantine_participant(split, clean, strategy, attack):
    accuracy = await final_accuracy(split, strategy, attack)
    print(f"\n{strategy:>13} under {attack:>4} attack: accuracy {accuracy:.4f} (clean fedavg {clean:.4f})")
    if strategy == "fedavg":
        assert accuracy < clean - 0.10
    else:
        assert accuracy >= clean - 0.03
