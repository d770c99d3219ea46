"""Federated training under differential privacy, with ε from dp_accounting reported every round.

User-level DP needs many participants for the noise to average out: the training split
is spread over 100 in-process participants (about 4 rows each), Poisson-sampled at
q = 0.3 per round, with σ calibrated so that 30 rounds spend ε = 8 at δ = 1e-5.
"""
from __future__ import annotations

import itertools

import dp_accounting
import numpy as np
import pytest
from dp_accounting import rdp

from qstore.federated import Coordinator, InProcessExecutor, LocalParticipant
from qstore.federated.privacy import RDP_ORDERS
from qstore.training import VQC
from qstore_client import InvalidArgument


def crowd(split, n: int) -> list[LocalParticipant]:
    executor = InProcessExecutor()
    shards = np.array_split(np.random.default_rng(0).permutation(len(split.X_train)), n)
    return [LocalParticipant((split.X_train[s], split.y_train[s]), name=f"user{i}", executor=executor)
            for i, s in enumerate(shards)]


async def test_central_dp_at_epsilon_8(split):
    rounds, q = 30, 0.3
    coord = Coordinator(crowd(split, 100), rounds=rounds, local_epochs=2, sampling="poisson", fraction=q,
                        dp={"clip": 0.5, "target_epsilon": 8.0, "delta": 1e-5}, seed=0)
    history = await coord.run(VQC(4, 2, 2), validation=(split.X_test, split.y_test))
    sigma = coord.accountant.sigma
    for h in history[::10] + history[-1:]:
        oracle = rdp.RdpAccountant(list(RDP_ORDERS))
        oracle.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), h.round)
        assert h.epsilon == pytest.approx(oracle.get_epsilon(1e-5), rel=1e-12)
    assert history[-1].epsilon == pytest.approx(8.0, abs=0.02)
    assert all(a.epsilon < b.epsilon for a, b in itertools.pairwise(history))
    print(f"\ncentral DP, 100 participants, q={q}, sigma={sigma:.3f}, epsilon={history[-1].epsilon:.3f}: "
          f"accuracy {history[-1].accuracy:.4f}")
    assert history[-1].accuracy > 0.80                     # majority class alone scores 0.63


async def test_local_dp_withholds_metrics_and_accounts_per_participant(split):
    coord = Coordinator(crowd(split, 20), rounds=8, local_epochs=2, sampling="poisson", fraction=0.5,
                        min_participants=2, dp={"clip": 0.5, "target_epsilon": 8.0, "mode": "local"}, seed=1)
    history = await coord.run(VQC(4, 2, 2), validation=(split.X_test, split.y_test))
    assert all(metrics == {} for h in history for metrics in h.local.values())
    assert all(h.samples == len(h.participants) for h in history)  # row counts withheld too
    most = max(coord.accountant.participation.values())
    oracle = rdp.RdpAccountant(list(RDP_ORDERS))
    oracle.compose(dp_accounting.GaussianDpEvent(coord.accountant.sigma), most)
    assert history[-1].epsilon == pytest.approx(oracle.get_epsilon(1e-5), rel=1e-12)
    assert history[-1].epsilon <= 8.0 + 0.02              # calibrated for someone asked every round
    print(f"\nlocal DP, 20 participants, sigma={coord.accountant.sigma:.3f}, epsilon={history[-1].epsilon:.3f}: "
          f"accuracy {history[-1].accuracy:.4f}")


async def test_dp_with_an_unfitted_model_needs_validation_data(split):
    coord = Coordinator(crowd(split, 4), rounds=1, dp={"noise_multiplier": 1.0})
    with pytest.raises(InvalidArgument) as exc:
        await coord.run(VQC(4, 2, 2))
    assert "escape the privacy accounting" in exc.value.message
