"""Aggregation rules on hand-made updates, and their tolerance conditions."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.federated import (
    STRATEGIES,
    Coordinator,
    FedAvg,
    FedProx,
    Krum,
    LocalParticipant,
    Median,
    MultiKrum,
    TrimmedMean,
    make_strategy,
)
from qstore_client import InvalidArgument

G = np.zeros(3)


def honest(rng: np.random.Generator, k: int) -> np.ndarray:
    return np.array([1.0, -2.0, 0.5]) + rng.normal(0, 0.05, (k, 3))


def test_fedavg_is_sample_weighted():
    deltas = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(FedAvg().aggregate(G, deltas, np.array([30, 10]), 0), [0.75, 0.25, 0.0])


def test_fedprox_aggregates_like_fedavg_and_carries_mu():
    deltas = np.random.default_rng(0).normal(size=(4, 3))
    counts = np.array([1, 2, 3, 4])
    np.testing.assert_allclose(FedProx(0.1).aggregate(G, deltas, counts, 0), FedAvg().aggregate(G, deltas, counts, 0))
    assert FedProx(0.1).mu == 0.1 and FedAvg().mu == 0.0


@pytest.mark.parametrize("strategy", [Median(f=1), TrimmedMean(beta=0.2, f=1), Krum(f=1), MultiKrum(f=1)])
@pytest.mark.parametrize("attack", ["huge", "flip"])
def test_robust_strategies_ignore_one_attacker(strategy, attack):
    rng = np.random.default_rng(1)
    deltas = honest(rng, 6)
    bad = np.full(3, 1e6) if attack == "huge" else -10 * deltas[0]
    attacked = np.vstack([deltas, bad])
    counts = np.array([10] * 6 + [10_000])                   # attackers also lie about counts
    step = strategy.aggregate(G, attacked, counts, 0)
    assert np.linalg.norm(step - deltas.mean(axis=0)) < 0.2
    assert np.linalg.norm(FedAvg().aggregate(G, attacked, counts, 0) - deltas.mean(axis=0)) > 5


def test_median_and_trimmed_mean_values():
    deltas = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    assert Median().aggregate(G[:1], deltas, np.ones(5), 0)[0] == 3.0
    # beta=0.2 of 5 trims ceil(1.0)=1 from each end: mean of 2, 3, 4.
    assert TrimmedMean(beta=0.2).aggregate(G[:1], deltas, np.ones(5), 0)[0] == pytest.approx(3.0)


def test_krum_picks_the_most_central_update():
    deltas = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1], [5.0, 5.0]])
    krum = Krum(f=1)
    scores = krum.scores(deltas)
    assert scores.argmax() == 4                               # the outlier scores worst
    step = krum.aggregate(np.zeros(2), deltas, np.ones(5), 0)
    assert any(np.array_equal(step, d) for d in deltas[:4])
    multi = MultiKrum(f=1).aggregate(np.zeros(2), deltas, np.ones(5), 0)  # m = n - f = 4 best
    np.testing.assert_allclose(multi, deltas[:4].mean(axis=0))


@pytest.mark.parametrize("strategy, n, fails", [
    (Krum(f=1), 4, True), (Krum(f=1), 5, False),            # Krum: n > 2f + 2
    (Krum(f=2), 6, True), (Krum(f=2), 7, False),
    (Median(f=1), 2, True), (Median(f=1), 3, False),         # median: n >= 2f + 1
    (TrimmedMean(beta=0.25, f=1), 2, True),                  # k = 1, 2k < n fails
    (TrimmedMean(beta=0.25, f=1), 3, False),
    (TrimmedMean(beta=0.1, f=2), 10, True),                  # trims k=1 < f=2 per end
    (TrimmedMean(beta=0.2, f=2), 10, False),
    (MultiKrum(f=1, m=5), 5, True),                          # m must be <= n - f
])
def test_tolerance_conditions(strategy, n, fails):
    if fails:
        with pytest.raises(InvalidArgument) as exc:
            strategy.check(n)
        assert exc.value.code == "invalid_argument"
        with pytest.raises(InvalidArgument):
            strategy.aggregate(G, np.zeros((n, 3)), np.ones(n), 0)
    else:
        strategy.check(n)
        assert strategy.min_updates() <= n


def test_bad_strategy_options():
    with pytest.raises(InvalidArgument) as exc:
        make_strategy("fedmagic")
    assert exc.value.code == "unknown_strategy"
    for name, options in [("trimmed_mean", {"beta": 0.5}), ("trimmed_mean", {"beta": 0}), ("krum", {"f": -1}),
                          ("fedprox", {"mu": -1.0}), ("median", {"beta": 0.1}), ("multi_krum", {"m": 0})]:
        with pytest.raises(InvalidArgument) as exc:
            make_strategy(name, **options)
        assert exc.value.code == "invalid_argument", (name, options)
    assert set(STRATEGIES) == {"fedavg", "fedprox", "circular", "median", "trimmed_mean", "krum", "multi_krum",
                               "fednova", "geometric_median"}


def test_coordinator_refuses_a_strategy_that_cannot_tolerate_f():
    data = (np.random.default_rng(0).normal(size=(10, 4)), np.arange(10) % 2)
    parts = [LocalParticipant(data, name=f"p{i}") for i in range(4)]
    with pytest.raises(InvalidArgument) as exc:
        Coordinator(parts, strategy="krum", min_participants=4)
    assert exc.value.code == "invalid_argument" and "n > 2f + 2" in exc.value.message
    with pytest.raises(InvalidArgument) as exc:
        Coordinator(parts, strategy="median", strategy_options={"f": 2}, min_participants=4)
    assert "2f + 1" in exc.value.message
    with pytest.raises(InvalidArgument) as exc:
        Coordinator(parts, strategy="no-such")
    assert exc.value.code == "unknown_strategy"
    Coordinator(parts, strategy="median", min_participants=3)   # f=1 needs 3: fine


def test_fednova_removes_the_objective_inconsistency_of_heterogeneous_local_steps():
    """Participants i minimise ½‖w − c_i‖² by τ_i local gradient steps (τ from 1 to 40). FedAvg drifts
    to a point weighted by how far each ran; FedNova, dividing each delta by τ_i, lands near the true
    optimum Σ p_i c_i (Wang et al., 2020, section 3)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (4, 6))
    counts = np.array([50.0, 80.0, 60.0, 40.0])
    steps = np.array([1.0, 5.0, 10.0, 40.0])
    optimum = counts @ centres / counts.sum()
    lr = 0.05
    found = {}
    for name in ("fedavg", "fednova"):
        strategy, w = make_strategy(name), np.zeros(6)
        for _ in range(300):
            deltas = np.stack([(1 - (1 - lr) ** t) * (c - w) for c, t in zip(centres, steps)])  # τ steps of GD
            w = w + strategy.aggregate(w, deltas, counts, 0, steps=steps)
        found[name] = np.linalg.norm(w - optimum)
    print(f"\ndistance to the optimum after 300 rounds: fedavg {found['fedavg']:.4f}, fednova {found['fednova']:.4f}")
    assert found["fednova"] < found["fedavg"] / 2
    # equal local steps: FedNova is FedAvg
    deltas = rng.normal(0, 1, (4, 6))
    nova = make_strategy("fednova").aggregate(np.zeros(6), deltas, counts, 0, steps=np.full(4, 7.0))
    np.testing.assert_allclose(nova, make_strategy("fedavg").aggregate(np.zeros(6), deltas, counts, 0))


def test_geometric_median_resists_a_far_outlier_and_states_its_tolerance():
    rng = np.random.default_rng(1)
    honest = rng.normal(0, 0.1, (6, 5)) + 1.0
    deltas = np.vstack([honest, np.full((1, 5), 1e6)])
    strategy = make_strategy("geometric_median", f=1)
    step = strategy.aggregate(np.zeros(5), deltas, np.ones(7), 0)
    assert np.abs(step - 1.0).max() < 0.2 and strategy.iterations >= 1
    # Weiszfeld's fixed point: the unit vectors towards the points sum to (almost) zero
    units = (deltas - step) / np.linalg.norm(deltas - step, axis=1, keepdims=True)
    assert np.linalg.norm(units.sum(axis=0)) < 1e-3
    with pytest.raises(InvalidArgument, match="2f \\+ 1"):
        make_strategy("geometric_median", f=2).aggregate(np.zeros(5), deltas[:4], np.ones(4), 0)


class Recording(LocalParticipant):
    """A real local participant that keeps the task it got and the update it returned."""

    async def fit(self, task):
        self.task = task
        self.update = await super().fit(task)
        return self.update


@pytest.mark.parametrize("secure", [False, True])
async def test_a_fednova_round_divides_real_local_sgd_deltas_by_their_steps(split, secure):
    """Local SGD on breast-cancer shards of 48 and 8 rows (batch 8, 2 epochs: τ = 12 and 2 steps).
    The round's step must be τ_eff·Σ p_i Δ_i/τ_i with the τ_i the participants counted, in the
    clear and through secure aggregation; FedAvg's Σ p_i Δ_i is far from it."""
    from qstore.federated.angles import wrap
    from qstore.training import VQC

    parts = [Recording((split.X_train[:48], split.y_train[:48]), name="big"),
             Recording((split.X_train[48:56], split.y_train[48:56]), name="small")]
    model = VQC(4, 2, 2)
    await Coordinator(parts, rounds=1, strategy="fednova", optimizer="sgd", lr=0.1, batch_size=8, local_epochs=2,
                      seed=0, secure_aggregation=secure).run(model)
    steps = np.array([p.update.steps for p in parts], dtype=np.float64)
    assert steps.tolist() == [12.0, 2.0]
    p = np.array([48.0, 8.0]) / 56.0
    deltas = np.stack([p_.update.delta for p_ in parts])
    nova = float(p @ steps) * (p @ (deltas / steps[:, None]))
    start = parts[0].task.params
    n_angles = model.n_circuit_params
    moved = model.params - start
    moved[:n_angles] = wrap(moved[:n_angles])
    np.testing.assert_allclose(moved, nova, atol=1e-6)
    assert np.linalg.norm(moved - p @ deltas) > 100 * 1e-6  # ignoring the normalisation would fail above
