"""Model gradients against finite differences of the loss, and the model/label contracts."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.circuits import get_backend
from qstore.training import VQC, HybridModel, Runtime, VQCRegressor, cross_entropy, mean_squared_error, softmax
from qstore.training.data import ArraySource


async def _prepared(model, X, y, rng):
    summary = await ArraySource(X, y).summary()
    model.bind_features(summary.n_features)
    model.scaler.fit(summary.stats)
    model.fit_targets(summary)
    return model, model.features(X), model.targets(y), model.init_params(rng)


def _fd_grad(model, X, t, p, h=1e-6):
    out = np.zeros_like(p)
    for i in range(len(p)):
        e = np.zeros_like(p)
        e[i] = h
        up, down = model.evaluate_batch(X, t, p + e, False), model.evaluate_batch(X, t, p - e, False)
        out[i] = (up.loss - down.loss) / (2 * h)
    return out


MODELS = {
    "vqc-binary": (lambda: VQC(3, 2, 2), "int2"),
    "vqc-3class-reupload-circular": (lambda: VQC(3, 2, 3, reupload=True, entanglement="circular"), "int3"),
    "vqc-amplitude": (lambda: VQC(2, 2, 2, encoding="amplitude"), "int2"),
    "vqc-string-labels": (lambda: VQC(3, 1, 3), "str3"),
    "regressor": (lambda: VQCRegressor(3, 2), "float"),
    "hybrid-3class": (lambda: HybridModel(3, 2, 3, hidden=(5,), head=(4,)), "int3"),
    "hybrid-binary": (lambda: HybridModel(2, 2, 2, hidden=(4, 3)), "int2"),
}


def _labels(kind: str, rng, n: int):
    if kind == "int2":
        return rng.integers(0, 2, n)
    if kind == "int3":
        return rng.integers(0, 3, n)
    if kind == "str3":
        return np.array(["cat", "dog", "eel"])[rng.integers(0, 3, n)]
    return rng.normal(size=n)


@pytest.mark.parametrize("key", MODELS)
async def test_loss_gradient_matches_finite_differences(rng, key) -> None:
    make, labels = MODELS[key]
    X = rng.normal(size=(9, 3))
    model, Xs, t, p = await _prepared(make(), X, _labels(labels, rng, 9), rng)
    ev = model.evaluate_batch(Xs, t, p, grad=True)
    np.testing.assert_allclose(ev.grad, _fd_grad(model, Xs, t, p), atol=1e-7)
    g = model.metric_tensor(Xs, p, "full")
    assert g.shape == (model.n_params, model.n_params)
    np.testing.assert_allclose(g, g.T, atol=1e-12)
    # classical weights get the identity block: plain gradient steps under QNG
    P = model.n_circuit_params
    np.testing.assert_array_equal(g[P:, P:], np.eye(model.n_params - P))


async def test_parameter_shift_on_cirq_gives_the_adjoint_gradient(rng) -> None:
    """The same model gradient through cirq.Simulator with parameter-shift (the oracle) and adjoint."""
    X = rng.normal(size=(3, 2))
    model, Xs, t, p = await _prepared(HybridModel(2, 1, 2, hidden=(3,)), X, rng.integers(0, 2, 3), rng)
    adjoint = model.evaluate_batch(Xs, t, p, grad=True).grad
    model.runtime = Runtime(get_backend("cirq"), "parameter-shift")
    shifted = model.evaluate_batch(Xs, t, p, grad=True).grad
    np.testing.assert_allclose(shifted, adjoint, atol=1e-6)


def test_softmax_cross_entropy_and_mse_values() -> None:
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    p = softmax(logits)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    loss, grad, probs = cross_entropy(logits, np.array([2, 1]))
    expected = np.mean([-np.log(p[0, 2]), 1000.0])                 # log-softmax stays finite
    assert loss == pytest.approx(expected)
    np.testing.assert_allclose(grad, (probs - np.eye(3)[[2, 1]]) / 2)
    mse, d = mean_squared_error(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    assert mse == 5.0 and d.tolist() == [1.0, 3.0]


async def test_labels_map_to_classes_and_predictions_map_back(rng) -> None:
    X = rng.normal(size=(12, 3))
    y = np.array(["b", "a", "c"] * 4)
    model, *_ = await _prepared(VQC(3, 1, 3), X, y, rng)
    assert model.classes.tolist() == ["a", "b", "c"]
    model.params = model.init_params(rng)
    assert set(model.predict(X)) <= {"a", "b", "c"}
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)
    signed, *_ = await _prepared(VQC(3, 1, 2), X, np.array([-1, 1] * 6), rng)
    assert signed.classes.tolist() == [-1, 1]


def test_model_config_round_trips() -> None:
    from qstore.training import model_from_config

    for model in (VQC(4, 2, 3, entanglement="full"), VQCRegressor(3, 1, reupload=True),
                  HybridModel(3, 2, 2, hidden=(6,), head=(2,), n_features=5)):
        again = model_from_config(model.config())
        assert type(again) is type(model) and again.config() == model.config()
        assert again.n_params == model.n_params
