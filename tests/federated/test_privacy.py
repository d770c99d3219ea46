"""ε accounting against dp_accounting itself, calibration, clipping and the noise actually added."""
from __future__ import annotations

import itertools

import dp_accounting
import numpy as np
import pytest
from dp_accounting import pld, rdp

from qstore.federated import Accountant, Coordinator, DPConfig, LocalParticipant, Sampling
from qstore.federated.privacy import PLD_DISCRETIZATION, RDP_ORDERS, clip, noisy_mean, privatize
from qstore_client import InvalidArgument

ADD_REMOVE = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
REPLACE = dp_accounting.NeighboringRelation.REPLACE_ONE


def spend(accountant: Accountant, rounds: int) -> float:
    """ε after `rounds` rounds: spent round by round as a run does (long runs: computed at once)."""
    if rounds > 10:
        return accountant.epsilon_for(accountant.sigma, rounds)
    spent = [accountant.spend(["a"]) for _ in range(rounds)]
    assert all(a < b for a, b in itertools.pairwise(spent))     # every round costs
    return spent[-1]


@pytest.mark.parametrize("q, sigma, T", [(0.01, 1.1, 1000), (0.1, 1.0, 50), (0.3, 1.373, 30), (0.5, 2.0, 10)])
def test_poisson_epsilon_matches_dp_accounting(q, sigma, T):
    delta = 1e-5
    ours_rdp = spend(Accountant(DPConfig(noise_multiplier=sigma, delta=delta), Sampling("poisson", q, 100), T), T)
    oracle = rdp.RdpAccountant(list(RDP_ORDERS), ADD_REMOVE)
    oracle.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), T)
    assert ours_rdp == pytest.approx(oracle.get_epsilon(delta), rel=1e-12)
    # Our leaner order grid costs under 1% against the library's default one.
    default = rdp.RdpAccountant()
    default.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), T)
    assert default.get_epsilon(delta) <= ours_rdp <= default.get_epsilon(delta) * 1.01

    ours_pld = spend(Accountant(DPConfig(noise_multiplier=sigma, delta=delta, accountant="pld"),
                                Sampling("poisson", q, 100), T), T)
    oracle = pld.PLDAccountant(ADD_REMOVE, value_discretization_interval=PLD_DISCRETIZATION)
    oracle.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), T)
    assert ours_pld == pytest.approx(oracle.get_epsilon(delta), rel=1e-12)
    fine = pld.PLDAccountant(ADD_REMOVE)                     # the library's default, finer grid
    fine.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), T)
    assert fine.get_epsilon(delta) <= ours_pld <= fine.get_epsilon(delta) * 1.001
    assert ours_pld <= ours_rdp * 1.001                      # PLD is the tighter accountant


def test_everyone_every_round_is_plain_gaussian_composition():
    acc = Accountant(DPConfig(noise_multiplier=2.0), Sampling("fixed", 1.0, 5), 10)
    oracle = rdp.RdpAccountant(list(RDP_ORDERS), ADD_REMOVE)
    oracle.compose(dp_accounting.GaussianDpEvent(2.0), 10)
    assert spend(acc, 10) == pytest.approx(oracle.get_epsilon(1e-5), rel=1e-12)


def test_fixed_fraction_uses_sampling_without_replacement():
    acc = Accountant(DPConfig(noise_multiplier=1.0), Sampling("fixed", 0.1, 100), 5)
    assert acc.relation == REPLACE
    oracle = rdp.RdpAccountant(list(RDP_ORDERS), REPLACE)
    # Replace-one: the clipped sum moves by up to 2C, so sigma counts half in sensitivity units.
    oracle.compose(dp_accounting.SampledWithoutReplacementDpEvent(100, 10, dp_accounting.GaussianDpEvent(0.5)), 5)
    assert spend(acc, 5) == pytest.approx(oracle.get_epsilon(1e-5), rel=1e-12)
    with pytest.raises(InvalidArgument) as exc:
        Accountant(DPConfig(noise_multiplier=1.0, accountant="pld"), Sampling("fixed", 0.1, 100), 20)
    assert "sampling-without-replacement" in exc.value.message


def test_local_dp_counts_each_participants_own_rounds():
    acc = Accountant(DPConfig(noise_multiplier=3.0, mode="local"), Sampling("poisson", 0.5, 4), 10)
    acc.spend(["a", "b"])
    acc.spend(["a"])
    eps = acc.spend(["a", "c"])
    oracle = rdp.RdpAccountant(list(RDP_ORDERS), ADD_REMOVE)
    oracle.compose(dp_accounting.GaussianDpEvent(3.0), 3)   # "a" took part 3 times; no amplification
    assert eps == pytest.approx(oracle.get_epsilon(1e-5), rel=1e-12)


@pytest.mark.parametrize("sampling, accountant", [(Sampling("poisson", 0.3, 100), "rdp"),
                                                  (Sampling("poisson", 0.3, 100), "pld"),
                                                  (Sampling("fixed", 1.0, 4), "rdp"),
                                                  pytest.param(Sampling("fixed", 0.2, 50), "rdp",
                                                               marks=pytest.mark.slow)])
def test_calibration_hits_the_target_epsilon(sampling, accountant):
    acc = Accountant(DPConfig(target_epsilon=8.0, accountant=accountant), sampling, rounds=10)
    assert acc.epsilon_for(acc.sigma, 10) == pytest.approx(8.0, abs=0.02)
    assert acc.epsilon_for(acc.sigma * 0.95, 10) > 8.0    # less noise would overspend
    assert spend(acc, 10) == pytest.approx(8.0, abs=0.02)


def test_clip_and_noise():
    v = np.array([3.0, 4.0])
    np.testing.assert_allclose(clip(v, 1.0), [0.6, 0.8])
    np.testing.assert_array_equal(clip(v, 10.0), v)
    deltas = np.array([[3.0, 4.0], [0.3, 0.4]])
    # The noise is unseeded (OS entropy), so the bounds are 5 standard errors: a mean's is
    # sd/sqrt(n) = 0.5/sqrt(4000) = 0.0079, a sample sd's relative one is 1/sqrt(2n) = 0.011.
    draws = np.array([noisy_mean(deltas, 1.0, 2.0, 4.0) for _ in range(4000)])
    np.testing.assert_allclose(draws.mean(axis=0), [(0.6 + 0.3) / 4, (0.8 + 0.4) / 4], atol=0.04)
    np.testing.assert_allclose(draws.std(axis=0), 2.0 * 1.0 / 4.0, rtol=0.056)
    local = np.array([privatize(v, 1.0, 0.5) for _ in range(4000)])
    np.testing.assert_allclose(local.mean(axis=0), [0.6, 0.8], atol=0.04)
    np.testing.assert_allclose(local.std(axis=0), 0.5, rtol=0.056)
    # Noise comes from OS entropy, not from any seed: two draws differ.
    assert not np.array_equal(noisy_mean(deltas, 1.0, 2.0, 4.0), noisy_mean(deltas, 1.0, 2.0, 4.0))


@pytest.mark.parametrize("options", [{"clip": 0}, {"clip": 1.0}, {"noise_multiplier": -1.0},
                                     {"noise_multiplier": 1.0, "delta": 1.0}, {"noise_multiplier": 1.0, "mode": "x"},
                                     {"noise_multiplier": 1.0, "accountant": "moments"}, {"sigma": 1.0}])
def test_bad_dp_config(options):
    with pytest.raises(InvalidArgument):
        DPConfig.of(options)


def test_central_dp_needs_a_sum_based_strategy():
    data = (np.random.default_rng(0).normal(size=(10, 4)), np.arange(10) % 2)
    parts = [LocalParticipant(data, name=f"p{i}") for i in range(3)]
    with pytest.raises(InvalidArgument) as exc:
        Coordinator(parts, strategy="median", min_participants=3, dp={"noise_multiplier": 1.0})
    assert "central DP" in exc.value.message
    Coordinator(parts, strategy="median", min_participants=3, dp={"noise_multiplier": 1.0, "mode": "local"})
