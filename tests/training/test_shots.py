"""Training and evaluation from shot-sampled expectations, and the shot gradient's variance."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

import qstore
from qstore.circuits import CircuitSpec, get_backend
from qstore.circuits.shots import shot_vjp
from qstore.errors import QStoreError
from qstore.training import VQC, Trainer, model_from_config
from qstore.training.models import Runtime
from qstore.training.reference_datasets import RECIPES


@pytest.mark.parametrize("readout", [(3,), (1, 2, 3)], ids=["one-observable", "three-observables"])
def test_shot_gradient_is_unbiased_and_its_variance_is_right(readout) -> None:
    spec = CircuitSpec(n_qubits=4, layers=2, readout=readout)
    rng = np.random.default_rng(0)
    X, theta = rng.random((3, 4)), rng.uniform(-np.pi, np.pi, spec.n_params)
    grad_out = rng.normal(size=(3, len(readout)))
    exact, _ = get_backend("statevector").vjp(spec, X, theta, grad_out, inputs=False)
    estimates, variances = [], []
    for seed in range(40):
        sampler = get_backend("statevector", shots=500, seed=seed)
        g, _, var = shot_vjp(sampler, spec, X, theta, grad_out, spec.observables)
        estimates.append(g)
        variances.append(var)
    estimates, var = np.array(estimates), np.mean(variances, axis=0)
    z = (estimates.mean(axis=0) - exact) / np.sqrt(var / len(estimates))
    assert np.all(np.abs(z) < 4), z
    # the reported variance is the spread the estimates really have
    ratio = estimates.var(axis=0, ddof=1).sum() / var.sum()
    assert 0.6 < ratio < 1.6, ratio


async def test_trainer_with_shots_uses_parameter_shift_and_reports_variance(reference) -> None:
    data = reference("iris-binary")
    X, y = data.X_train[:24], data.y_train[:24]
    trainer = Trainer(None, model_from_config(RECIPES["iris-binary"].model), batch_size=12, seed=0, shots=200)
    assert trainer.gradient == "parameter-shift" and trainer.backend.shots == 200
    history = await trainer.fit((X, y), epochs=1)
    assert history["grad_var"][0] > 0
    # same seed, same shots: the same run
    again = Trainer(None, model_from_config(RECIPES["iris-binary"].model), batch_size=12, seed=0, shots=200)
    await again.fit((X, y), epochs=1)
    np.testing.assert_array_equal(again.model.params, trainer.model.params)
    sampled = await trainer.evaluate(data.X_test, data.y_test, shots=100_000)
    trainer.model.runtime = Runtime(get_backend("statevector"))
    exact = trainer.model.score(data.X_test, data.y_test)
    assert abs(exact - sampled) <= 0.05
    with pytest.raises(QStoreError) as err:
        await trainer.evaluate(data.X_test, data.y_test, shots=0)
    assert err.value.code == "invalid_parameters"


async def test_shots_in_checkpoint_config(fastdb, reference) -> None:
    data = reference("iris-binary")
    trainer = Trainer(fastdb, VQC(4, 1), batch_size=16, seed=1, shots=64, run="shots-run")
    await trainer.fit((data.X_train[:32], data.y_train[:32]), epochs=1, checkpoint_every=1)
    resumed = await Trainer.from_checkpoint(fastdb, trainer.checkpoints[-1])
    assert resumed.shots == 64 and resumed.gradient == "parameter-shift"


async def test_iris_with_1000_shots_is_within_3_points_of_exact(reference) -> None:
    recipe = RECIPES["iris"]
    data = reference("iris", recipe.components)
    accuracy = {}
    for shots in (None, 1000):
        trainer = Trainer(None, model_from_config(recipe.model), lr=recipe.lr, batch_size=recipe.batch_size,
                          seed=0, shots=shots)
        await trainer.fit((data.X_train, data.y_train), epochs=recipe.epochs)
        accuracy[shots] = await trainer.evaluate(data.X_test, data.y_test)
    print("iris accuracy exact / 1000 shots:", accuracy)
    assert accuracy[1000] >= accuracy[None] - 0.03, accuracy


def test_train_command_runs_with_shots_on_a_noisy_backend(tmp_path, capsys) -> None:
    import argparse

    from qstore.training import add_train_parser, run_train

    parser = argparse.ArgumentParser(prog="qstore")
    add_train_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--data-dir", str(tmp_path / "data"), "--sklearn", "iris-binary", "--qubits",
                              "4", "--layers", "1", "--epochs", "1", "--batch-size", "35", "--backend",
                              "density_matrix", "--noise", "ionq_aria", "--shots", "200", "--checkpoint-every", "1",
                              "--run", "noisy", "--no-progress"])
    assert run_train(args) == 0
    assert "noisy-e00001" in capsys.readouterr().out

    async def saved() -> dict:
        async with await qstore.Database.open(str(tmp_path / "data")) as db:
            return await db.load_checkpoint("noisy-e00001")

    checkpoint = asyncio.run(saved())
    assert checkpoint["config"]["shots"] == 200 and checkpoint["metrics"]["grad_var"][0] > 0


def test_shots_are_refused_for_a_model_that_does_not_run_on_the_backend() -> None:
    import cirq
    import sympy

    from qstore.training import CircuitModel

    q = cirq.LineQubit.range(2)
    x0, w0 = sympy.symbols("x0 w0")
    model = CircuitModel(cirq.Circuit(cirq.ry(x0).on(q[0]), cirq.rx(w0).on(q[0]), cirq.CNOT(*q)), inputs=[x0],
                         weights=[w0], observables=[cirq.Z(q[1])], n_classes=2)
    with pytest.raises(QStoreError) as err:
        Trainer(None, model, shots=100)
    assert err.value.code == "invalid_argument"
