"""Fine-tuning: named parameter groups, load_model, Trainer(freeze=...) with frozen parameters
and their optimizer state left bit-identical."""
from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

from qstore.errors import QStoreError
from qstore.training import VQC, CircuitModel, HybridModel, Trainer, VQCRegressor, get_optimizer, load_model
from qstore.training.freezing import masked_step


def _digits(pair: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, pair)
    return PCA(4, random_state=0).fit(X).transform(X[keep]), (y[keep] == pair[1]).astype(int)


def test_parameter_groups_partition_every_models_params() -> None:
    x, w = sympy.symbols("x w")
    circuit = cirq.Circuit(cirq.rx(x).on(cirq.LineQubit(0)), cirq.ry(w).on(cirq.LineQubit(0)))
    hybrid = HybridModel(3, 2, n_classes=3, hidden=(5,), n_features=6)
    models = [VQC(4, 3, n_classes=3, n_features=4), VQCRegressor(3, 2, n_features=3), hybrid,
              CircuitModel(circuit, [x], [w], [cirq.Z(cirq.LineQubit(0))], n_classes=2)]
    v, u = sympy.symbols("v u")
    grouped = CircuitModel(cirq.Circuit(cirq.rx(x).on(cirq.LineQubit(0)), cirq.ry(w + v).on(cirq.LineQubit(0)),
                                        cirq.rz(u).on(cirq.LineQubit(0))), [x], [w, v, u],
                           [cirq.Z(cirq.LineQubit(0))], groups={"first": [v, "u"]})
    models.append(grouped)
    assert grouped.parameter_groups == {"first": [1, 2], "weights": [0], "readout": [3, 4]}
    from qstore.training import model_from_config
    assert model_from_config(grouped.config()).parameter_groups == grouped.parameter_groups
    for bad in ({"readout": [w]}, {"a": [x]}, {"a": [w], "b": [w]}):
        with pytest.raises(QStoreError):
            CircuitModel(circuit, [x], [w], [cirq.Z(cirq.LineQubit(0))], groups=bad)
    for model in models:
        groups = model.parameter_groups
        assert sorted(i for rows in groups.values() for i in rows) == list(range(model.n_params)), model.kind
    assert list(models[0].parameter_groups) == ["layer0", "layer1", "layer2", "readout"]
    assert models[0].parameter_groups["layer1"] == list(range(12, 24))
    assert list(hybrid.parameter_groups) == ["encoder", "layer0", "layer1", "readout"]
    assert len(hybrid.parameter_groups["encoder"]) == 6 * 5 + 5 + 5 * 3 + 3


def test_unknown_or_all_groups_are_refused() -> None:
    for freeze in (["layer7"], "layer0", ["layer0", "layer1", "readout"]):
        with pytest.raises(QStoreError) as exc:
            Trainer(None, VQC(4, 2, n_features=4), freeze=freeze)
        assert exc.value.code == "invalid_argument"


def test_masked_step_leaves_frozen_params_and_their_adam_moments_untouched() -> None:
    class Quadratic:
        evaluations = 0

        def value_and_grad(self, p):
            return float(p @ p), 2 * p

    adam = get_optimizer("adam", 0.1)
    params = np.linspace(-1, 1, 6)
    params = adam.step(Quadratic(), params).params                # every moment is non-zero now
    m, v = adam.state.m.copy(), adam.state.v.copy()
    free = np.array([1, 4])
    result = masked_step(adam, Quadratic(), params, free)
    frozen = np.setdiff1d(np.arange(6), free)
    assert result.params[frozen].tobytes() == params[frozen].tobytes()
    assert adam.state.m[frozen].tobytes() == m[frozen].tobytes()
    assert adam.state.v[frozen].tobytes() == v[frozen].tobytes()
    assert np.all(adam.state.m[free] != m[free]) and np.all(result.params[free] != params[free])
    assert adam.state.t == 2


async def test_fine_tune_a_pretrained_model_with_frozen_layers(fastdb) -> None:
    X01, y01 = _digits((0, 1))
    X08, y08 = _digits((0, 8))
    await fastdb.import_dataset("d01", X01, y01)
    await fastdb.import_dataset("d08", X08, y08)
    pre = Trainer(fastdb, VQC(4, 2, n_classes=2), lr=0.1, batch_size=32, seed=0, run="pre")
    await pre.fit("d01", epochs=3, checkpoint_every=3)

    model = await load_model(fastdb, pre.checkpoints[-1])
    assert isinstance(model, VQC) and model.score(X01, y01) == pre.model.score(X01, y01)
    before = model.params.copy()
    frozen = model.parameter_groups["layer0"]
    tune = Trainer(fastdb, model, lr=0.1, batch_size=32, seed=0, freeze=["layer0"], run="tune")
    await tune.fit("d08", epochs=3, checkpoint_every=3)
    assert model.params[frozen].tobytes() == before[frozen].tobytes()
    assert not np.array_equal(np.delete(model.params, frozen), np.delete(before, frozen))
    assert not np.any(tune.optimizer.state.m[frozen]) and not np.any(tune.optimizer.state.v[frozen])
    assert model.score(X08, y08) >= 0.9

    # the freeze list is part of the checkpoint's config: resume keeps it
    resumed = await Trainer.from_checkpoint(fastdb, tune.checkpoints[-1])
    assert resumed.freeze == ["layer0"]
    await resumed.fit(epochs=1)
    assert resumed.model.params[frozen].tobytes() == before[frozen].tobytes()

    with pytest.raises(QStoreError) as exc:
        await load_model(fastdb, "pre-metrics")
    assert exc.value.code == "checkpoint_mismatch"
