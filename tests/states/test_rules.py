"""The primitives' rules as pure functions of record documents: no database involved."""
import numpy as np
import pytest

from qstore import InvalidArgument, NotFound, records
from qstore.states import decoherence, entanglement, measurement, quantum_state, superposition, tunneling


def doc(*branches, e=None, v=1):
    """A document from (vector, context, amplitude) triples."""
    return records.make_doc([(np.asarray(x, np.float32), c, a) for x, c, a in branches], {}, e, v)


# ------------------------------------------------------------------ superposition
def test_branches_are_numbers_of_one_dimension_and_never_zero():
    parts = superposition.normalise_branches([([1, 0], "a", 3), ([0, 1], "b", 4j)], 2, "l2")
    np.testing.assert_allclose([a for _, _, a in parts], [0.6, 0.8j])
    for bad, code in [([([1, 0], "a", 1), ([0, 1], "b", 0)], "invalid_argument"),
                      ([([1, 0], "a", 1), ([0, 1], "b", 0j)], "invalid_argument"),
                      ([([1, 0], "a", 0), ([0, 1], "b", 0.0)], "invalid_amplitudes"),
                      ([([1, 0], "a", 1), ([0, 1, 0], "b", 1)], "dimension_mismatch"),
                      ([([1, 0], "a", 1), ([[0, 1], [1, 0]], "b", 1)], "dimension_mismatch"),
                      ([([1, 0], "a", "1")], "invalid_amplitudes"),
                      ([([1, 0], "a", True)], "invalid_amplitudes"),
                      ([([1, 0], "a", np.bool_(True))], "invalid_amplitudes"),
                      ([([1, 0], "a", None)], "invalid_amplitudes")]:
        with pytest.raises(InvalidArgument) as err:
            superposition.normalise_branches(bad, 2, "l2")
        assert err.value.code == code, bad


# ------------------------------------------------------------------ measurement
def test_choose_is_the_inverse_cdf_of_the_born_probabilities():
    d = doc(([1, 0], "a", np.sqrt(0.2)), ([0, 1], "b", np.sqrt(0.5)), ([1, 1], "a", np.sqrt(0.3)))
    assert [measurement.choose(d, None, u)[0] for u in (0.0, 0.19, 0.21, 0.69, 0.71, 0.999)] == [0, 0, 1, 1, 2, 2]
    i, p = measurement.choose(d, "a", 0.5)  # projected onto "a": 0.2/0.5, 0.3/0.5
    assert (i, p) == (2, pytest.approx(0.6))
    with pytest.raises(NotFound) as err:
        measurement.choose(d, "zzz", 0.5)
    assert err.value.code == "context_not_found"


def test_correlated_collapse_follows_each_partner_draw_against_its_rho():
    a = doc(([1, 0], "x", 1), ([0, 1], "y", 1), v=4)
    b = doc(([1, 0], "x", 0.1), ([0, 1], "y", 1), ([1, 1], "x", 0.5))
    c = doc(([0, 1], "y", 1), ([1, 1], "z", 1))
    partners = [("b", b, 0.95), ("c", c, 1.0)]
    out = measurement.collapse("a", a, 0, partners, np.array([0.9, 0.0]))
    assert set(out) == {"a", "b"}  # c has no "x" branch
    assert out["a"]["v"] == 5 and len(out["a"]["b"]) == 1 and out["a"]["b"][0][2:] == ["x", 1.0, 0.0]
    np.testing.assert_array_equal(records.branch_vector(out["b"], 0), [1, 1])  # b's most probable "x" branch
    assert set(measurement.collapse("a", a, 0, partners, np.array([0.951, 0.0]))) == {"a"}


# ------------------------------------------------------------------ entanglement
def test_one_rho_per_pair_over_overlapping_groups():
    groups = [{"members": ["a", "b", "c"], "strength": 0.5}, {"members": ["a", "b"], "strength": 0.9}]
    assert entanglement.partner_rhos("a", groups) == {"b": pytest.approx(0.95), "c": 0.5}
    assert entanglement.correlation("a", "b", groups) == pytest.approx(0.95)
    assert entanglement.correlation("a", "a", []) == 1.0
    assert entanglement.correlation("a", "z", groups) == 0.0
    a = doc(([0, 0], None, 1))
    b = doc(([5, 5], None, 1))
    out = entanglement.update("a", a, np.array([2, 0], np.float32), [("b", b, 0.95)], "l2")
    np.testing.assert_allclose(records.branch_vector(out["b"], 0), [5 + 1.9, 5])  # not 1.4·Δ


def test_joining_a_group_keeps_its_strength_and_leaving_dissolves_it():
    g = entanglement.joined(None, "g", ["a", "b"], 0.5)
    g2 = entanglement.joined(g, "g", ["c"], 0.5)
    assert g2 == {"members": ["a", "b", "c"], "strength": 0.5}
    with pytest.raises(InvalidArgument) as err:
        entanglement.joined(g, "g", ["c"], 0.9)
    assert err.value.code == "invalid_strength"
    with pytest.raises(InvalidArgument):
        entanglement.joined(None, "g", ["a"], 0.5)
    assert entanglement.without(g2, ["a"]) == {"members": ["b", "c"], "strength": 0.5}
    assert entanglement.without(g2, ["a", "b"]) is None
    assert entanglement.without(g2, None) is None


# ------------------------------------------------------------------ decoherence
def test_one_view_of_expiry():
    d = doc(([1, 0], "weak", 0.6), ([0, 1], "strong", 0.8), e=100.0, v=3)
    assert decoherence.view(d, 99.0, "delete") is d
    assert decoherence.view(d, 100.0, "delete") is None
    seen = decoherence.view(d, 100.0, "collapse")
    assert seen["e"] is None and seen["v"] == 3 and [b[2:] for b in seen["b"]] == [["strong", 1.0, 0.0]]
    assert decoherence.view(doc(([1, 0], None, 1), e=1.0), 2.0, "collapse") is None  # nothing to collapse to
    assert decoherence.decohered(d, 100.0, "collapse")["v"] == 4


# ------------------------------------------------------------------ tunneling
def test_cell_distance_is_the_farthest_face():
    home, d = tunneling.cell_distances(np.array([0.0]), np.array([[0.0], [2.0], [6.0]]))
    assert home == 0
    np.testing.assert_allclose(d, [0, 1, 4])
    home, d = tunneling.cell_distances(np.array([1.0]), np.array([[0.0], [0.0], [4.0]]))  # duplicate centroid
    np.testing.assert_allclose(d, [0, 0, 1])


def test_select_caps_far_regions_and_fills_from_home():
    regions = [0, 1, 1, 1, 0, 0, 2, 0, 0]  # ranked best first; home is 0
    assert tunneling.select(regions, 0, 4, 2) == [0, 1, 2, 4]
    assert tunneling.select(regions, 0, 6, 2) == [0, 1, 2, 4, 5, 6]
    assert tunneling.select(regions, 0, 7, 1) == [0, 1, 4, 5, 6, 7, 8]  # far: one each; home fills
    assert tunneling.select([1, 1, 1], 0, 3, 1) == [0, 1, 2]  # nothing at home: still min(k, n)
    assert tunneling.select([0, 0], 0, 5, 1) == [0, 1]


def test_regions_are_stale_after_drift_or_when_ivf_trains():
    r = {"n": 100, "mark": 100, "requested": None, "source": "kmeans"}
    assert not tunneling.stale(r, size=100, written=49, ivf_ready=False)
    assert tunneling.stale(r, size=100, written=50, ivf_ready=False)  # half the data rewritten
    assert tunneling.stale(r, size=49, written=0, ivf_ready=False)
    assert tunneling.stale(r, size=100, written=0, ivf_ready=True)
    assert not tunneling.stale({**r, "requested": 8}, size=100, written=0, ivf_ready=True)
    assert tunneling.stale(None, size=100, written=0, ivf_ready=False)


# ------------------------------------------------------------------ quantum states
def test_counts_come_from_the_nonzero_outcomes_only():
    psi = np.zeros(2 ** 12, np.complex128)
    psi[5], psi[4000] = 0.6, 0.8j
    counts = quantum_state.measure(psi, 1000, None, np.random.default_rng(0))
    assert set(counts) == {format(5, "012b"), format(4000, "012b")} and sum(counts.values()) == 1000
