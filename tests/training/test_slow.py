"""Longer versions of the CI checks (``pytest -m slow``): more seeds, more runs, the cirq backend end to end."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.training import Trainer, model_from_config
from qstore.training.reference_datasets import RECIPES, Recipe

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=list(RECIPES))
async def test_every_seed_reaches_the_target(reference, recipe: Recipe) -> None:
    data = reference(recipe.dataset, recipe.components)
    accuracies = []
    for seed in range(1, 6):
        trainer = Trainer(None, model_from_config(recipe.model), lr=recipe.lr, batch_size=recipe.batch_size,
                          seed=seed)
        await trainer.fit((data.X_train, data.y_train), epochs=recipe.epochs)
        accuracies.append(await trainer.evaluate(data.X_test, data.y_test))
    assert min(accuracies) >= recipe.target, accuracies


async def test_training_on_cirq_with_parameter_shift_matches_the_statevector(reference) -> None:
    data = reference("iris-binary")
    X, y = data.X_train[:12], data.y_train[:12]
    params = []
    for backend, gradient in (("statevector", "adjoint"), ("cirq", "parameter-shift")):
        trainer = Trainer(None, model_from_config(RECIPES["iris-binary"].model), backend=backend, gradient=gradient,
                          batch_size=6, seed=0)
        await trainer.fit((X, y), epochs=2)
        params.append(trainer.model.params)
    np.testing.assert_allclose(params[1], params[0], atol=1e-6)


def test_tunneling_advantage_holds_over_many_starts() -> None:
    from qstore.vqe import minimize

    from .test_tunneling import BUDGET, CIRCUIT, GLOBAL, H

    starts = np.random.default_rng(11).uniform(0, 2 * np.pi, size=(100, 2))
    wins = {"sgd": 0, "adam": 0, "tunneling": 0}
    for i, start in enumerate(starts):
        for name in wins:
            steps = (BUDGET - 1) // 2 if name == "tunneling" else BUDGET - 1
            extra = {"seed": i} if name == "tunneling" else {}
            r = minimize(CIRCUIT, H, start, optimizer=name, steps=steps, lr=0.1, **extra)
            wins[name] += r.energy < GLOBAL + 1e-2
    assert wins["tunneling"] >= 75 and wins["sgd"] <= 25 and wins["adam"] <= 25, wins
