import numpy as np
import pytest
from scipy.stats import chisquare

from qstore import InvalidArgument, NotFound


def random_state(rng, n):
    psi = rng.normal(size=2 ** n) + 1j * rng.normal(size=2 ** n)
    return psi / np.linalg.norm(psi)


async def test_measure_state_born_rule_and_marginals(db, rng):
    psi = random_state(rng, 3)
    await db.put_state("psi", psi)
    np.testing.assert_allclose(await db.get_state("psi"), psi)
    shots = 200_000
    counts = await db.measure_state("psi", shots=shots, seed=1)
    assert sum(counts.values()) == shots
    observed = np.array([counts.get(format(i, "03b"), 0) for i in range(8)])
    p = np.abs(psi) ** 2
    assert chisquare(observed, p * shots).pvalue > 0.001
    # marginal over qubits (2, 0): bitstring lists qubit 2 then qubit 0; qubit 0 is the leftmost bit
    marg = await db.measure_state("psi", shots=shots, qubits=[2, 0], seed=2)
    t = p.reshape(2, 2, 2)
    expected = {f"{b2}{b0}": t[b0, :, b2].sum() for b2 in (0, 1) for b0 in (0, 1)}
    keys = sorted(expected)
    assert chisquare([marg.get(k, 0) for k in keys], [expected[k] * shots for k in keys]).pvalue > 0.001
    assert await db.measure_state("psi", shots=100, seed=5) == await db.measure_state("psi", shots=100, seed=5)


async def test_bell_state_is_perfectly_correlated(db):
    await db.put_state("bell", np.array([1, 0, 0, 1]) / np.sqrt(2))
    counts = await db.measure_state("bell", shots=10_000, seed=0)
    assert set(counts) == {"00", "11"}


@pytest.mark.parametrize("bad", [np.ones(3) / np.sqrt(3), np.ones(1), np.ones(4), np.array([1, np.nan, 0, 0]),
                                 np.ones((2, 2)) / 2])
async def test_bad_states_are_rejected(db, bad):
    await db.put_state("keep", np.array([1, 0]))
    with pytest.raises(InvalidArgument) as err:
        await db.put_state("keep", bad)
    assert err.value.code == "invalid_state"
    np.testing.assert_array_equal(await db.get_state("keep"), [1, 0])


async def test_measure_state_argument_errors(db):
    await db.put_state("s", np.array([0, 1, 0, 0]))
    for kwargs in ({"shots": 0}, {"shots": 10, "qubits": [2]}, {"shots": 10, "qubits": [0, 0]}):
        with pytest.raises(InvalidArgument):
            await db.measure_state("s", **kwargs)
    with pytest.raises(NotFound):
        await db.measure_state("missing", shots=10)
