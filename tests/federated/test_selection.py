"""QUBO participant selection: the solvers agree with exhaustive search, and rounds record why each was picked."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.federated import Coordinator, LocalParticipant
from qstore.federated.selection import (
    Candidate,
    QuboSelection,
    anneal,
    build_qubo,
    exhaustive,
    feasible_states,
    qaoa,
)
from qstore.training import VQC
from qstore_client import InvalidArgument
from tests.federated.conftest import dirichlet_shards


def candidates(k: int, seed: int) -> list[Candidate]:
    rng = np.random.default_rng(seed)
    return [Candidate(f"p{i}", int(rng.integers(20, 200)), {0: int(rng.integers(0, 50)), 1: int(rng.integers(0, 50))},
                      float(rng.uniform(0.1, 2.0)), bool(rng.random() < 0.15), int(rng.integers(0, 5)))
            for i in range(k)]


@pytest.mark.parametrize("seed", [0, 1, 2, 5, 6, 7])  # 3, 4: near-ties, below
def test_qaoa_matches_exhaustive_search(seed):
    """3-layer QAOA resolves optima separated by >= 0.5% of the energy spread (near-ties it may swap)."""
    qubo = build_qubo(candidates(6, seed), 2)
    energies = np.sort(qubo.energy(feasible_states(6, 2)))
    assert energies[1] - energies[0] >= 0.005 * (energies[-1] - energies[0])
    x, probability = qaoa(qubo, 2, layers=3, seed=seed)
    np.testing.assert_array_equal(x, exhaustive(qubo, 2))
    assert probability > 2 / 15  # amplified well above the uniform 1/C(6, 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_annealing_matches_exhaustive_search(seed):
    qubo = build_qubo(candidates(14, seed), 4)
    best = exhaustive(qubo, 4)
    found = anneal(qubo, 4, seed)
    assert found.sum() == 4 and qubo.energy(found) == pytest.approx(qubo.energy(best))


def test_the_energy_prefers_balanced_labels_and_avoids_open_breakers():
    one_class = [Candidate(f"zero{i}", 100, {0: 100}) for i in range(3)] + \
                [Candidate(f"one{i}", 100, {1: 100}) for i in range(3)]
    picked, why = QuboSelection(solver="exhaustive").select(one_class, 2, 0)
    assert sorted(one_class[i].name[:3] for i in picked) == ["one", "zer"]  # one of each class, never two alike
    assert set(why[one_class[picked[0]].name]) == {"coverage", "size", "latency", "age", "breaker"}
    one_class[3].open = one_class[4].open = one_class[5].open = True
    picked, why = QuboSelection(solver="exhaustive").select(one_class, 2, 0)
    assert all(not one_class[i].open for i in picked) and all(w["breaker"] == 0 for w in why.values())


def test_coverage_prefers_much_data_of_every_label_to_a_balanced_trickle():
    """Two balanced two-row participants are as balanced as a 100-row one of each label; coverage
    (with no size term to break the tie) still picks the pair that brings each label's share."""
    cands = [Candidate(f"tiny{i}", 2, {0: 1, 1: 1}) for i in range(4)] + \
            [Candidate("zeros", 100, {0: 100}), Candidate("ones", 100, {1: 100})]
    picked, why = QuboSelection(solver="exhaustive", weights={"size": 0, "latency": 0, "age": 0}).select(cands, 2, 0)
    assert sorted(cands[i].name for i in picked) == ["ones", "zeros"]
    assert all(w["coverage"] < 0 for w in why.values())


async def test_rounds_record_why_each_participant_was_picked(split):
    shards = dirichlet_shards(split.y_train, 8, 0.3, np.random.default_rng(0))
    parts = [LocalParticipant((split.X_train[s], split.y_train[s]), name=f"p{i}") for i, s in enumerate(shards)]
    history = await Coordinator(parts, rounds=3, fraction=0.25, seed=0, selection="qubo").run(VQC(4, 2, 2))
    for h in history:
        assert len(h.selected) == 2 and set(h.why) == set(h.selected)
    # the age term rotates the choice: not the same pair every round
    assert len({tuple(h.selected) for h in history}) > 1


def test_bad_selection_is_refused(split):
    parts = [LocalParticipant((split.X_train[:20], split.y_train[:20]), name=f"p{i}") for i in range(4)]
    for kwargs in ({"selection": "greedy"}, {"selection": "qubo", "selection_options": {"solver": "magic"}},
                   {"selection": "qubo", "selection_options": {"weights": {"size": -1}}},
                   {"selection": "qubo", "sampling": "poisson", "fraction": 0.5},
                   {"selection": "qubo", "dp": {"noise_multiplier": 1.0}}):
        with pytest.raises(InvalidArgument):
            Coordinator(parts, **kwargs)


async def test_qubo_selection_over_server_nodes_asks_them_for_label_counts(nodes, split):
    coord = Coordinator([n.url for n in nodes], dataset="skew", rounds=2, fraction=0.5, seed=0, selection="qubo")
    history = await coord.run(VQC(4, 2, 2))
    assert all(len(h.selected) == 2 and set(h.why) == set(h.selected) for h in history)
    for i, node in enumerate(nodes):  # what each node reported: its rows per label, exactly
        labels, counts = np.unique(split.y_train[split.skew[i]], return_counts=True)
        assert coord._profiles[node.url].label_counts() == dict(zip(labels.tolist(), counts.tolist()))
