"""What crosses the wire is validated: malformed or wrong-shaped messages are refused with clear codes."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.federated import RoundTask, Summary, Update
from qstore_client import InvalidArgument, Unavailable
from qstore_client.protocol import DOCUMENT, NO_LIMITS, dumps, loads

TASK = {"round": 3, "params": np.zeros(5), "model": {"type": "vqc", "n_qubits": 2, "layers": 1}, "state": {}}


def over_the_wire(doc: dict) -> dict:
    """Encode and decode as a job param or job result travels (msgpack, the protocol's Document kind)."""
    return DOCUMENT.decode(loads(dumps(DOCUMENT.encode(doc, True), True), "application/msgpack"), "doc", NO_LIMITS)


def test_task_round_trip():
    task = RoundTask(round=2, params=np.linspace(-1, 1, 7), model={"type": "vqc"}, state={"classes": [0, 1]},
                     dataset="mine", epochs=3, mu=0.1, clip=1.0, noise_multiplier=0.5, seed=9)
    back = RoundTask.from_wire(over_the_wire(task.to_wire()))
    np.testing.assert_array_equal(back.params, task.params)
    assert (back.dataset, back.epochs, back.mu, back.clip, back.noise_multiplier, back.seed) == ("mine", 3, 0.1, 1.0,
                                                                                                0.5, 9)
    assert back.local_dp


@pytest.mark.parametrize("change, code", [
    ({"params": np.array([np.nan, 0.0])}, "invalid_argument"),
    ({"params": np.zeros((2, 2))}, "invalid_argument"),
    ({"params": "zeros"}, "invalid_argument"),
    ({"epochs": 0}, "invalid_argument"),
    ({"lr": -1.0}, "invalid_argument"),
    ({"batch_size": True}, "invalid_argument"),
    ({"dataset": 5}, "invalid_argument"),
    ({"noise_multiplier": 1.0}, "invalid_argument"),       # local DP without a clip norm
    ({"rows": [[1.0, 2.0]]}, "unknown_field"),
    ({"model": None}, "invalid_argument"),
])
def test_bad_tasks(change, code):
    with pytest.raises(InvalidArgument) as exc:
        RoundTask.from_wire({**TASK, **change})
    assert exc.value.code == code
    with pytest.raises(InvalidArgument) as exc:
        RoundTask.from_wire({k: v for k, v in TASK.items() if k != "params"})
    assert exc.value.code == "missing_field"


def test_update_round_trip_and_refusals():
    good = Update(round=4, delta=np.arange(5.0), n=12, metrics={"loss": 0.3, "accuracy": 0.9}, seconds=0.5)
    back = Update.from_wire(over_the_wire(good.to_wire()), n_params=5, round=4)
    np.testing.assert_array_equal(back.delta, good.delta)
    assert back.n == 12 and back.metrics == good.metrics
    wire = good.to_wire()
    for bad in ({**wire, "delta": np.arange(4.0)}, {**wire, "delta": np.full(5, np.inf)},
                {**wire, "delta": [[1.0] * 5]}, {**wire, "n": 0}, {**wire, "n": 2.5}, {**wire, "round": 3},
                {**wire, "metrics": {"loss": "low"}}, {**wire, "X": np.zeros((3, 4))}, "not a map", None):
        with pytest.raises(InvalidArgument):
            Update.from_wire(bad, n_params=5, round=4)


def test_summary_merge_equals_the_union():
    rng = np.random.default_rng(0)
    X, y = rng.normal(3, 2, (300, 4)), rng.integers(0, 3, 300)
    parts = [Summary.of(X[s], y[s]) for s in np.array_split(np.arange(300), [40, 170])]
    merged = Summary.merge([Summary.from_wire(over_the_wire(p.to_wire())) for p in parts])
    whole = Summary.of(X, y)
    for name in ("minimum", "maximum", "mean", "std"):
        np.testing.assert_allclose(getattr(merged, name), getattr(whole, name), rtol=1e-12)
    np.testing.assert_array_equal(merged.labels, [0, 1, 2])
    assert merged.n == 300
    with pytest.raises(InvalidArgument) as exc:
        Summary.merge([parts[0], Summary.of(X[:, :3], y)])
    assert exc.value.code == "invalid_features"


def test_robust_merge_outvotes_f_liars():
    rng = np.random.default_rng(1)
    X, y = rng.normal(0, 1, (400, 3)), rng.integers(0, 2, 400)
    honest = [Summary.of(X[s], y[s]) for s in np.array_split(np.arange(400), 4)]
    liar = Summary(10, np.full(3, -1e9), np.full(3, 1e9), np.full(3, 1e9), np.full(3, 1e9), np.array([0, 1, 7]))
    merged = Summary.merge([*honest, liar], f=1)
    assert merged.minimum.min() > -5 and merged.maximum.max() < 5 and np.abs(merged.mean).max() < 0.5
    np.testing.assert_array_equal(merged.labels, [0, 1])     # label 7 came from one participant only
    naive = Summary.merge([*honest, liar])
    assert naive.maximum.max() == 1e9 and 7 in naive.labels
    with pytest.raises(Unavailable) as exc:
        Summary.merge([honest[0], liar], f=1)
    assert exc.value.code == "unavailable"
