"""Test accuracy of real classifiers trained from database datasets (statevector, adjoint, fixed seeds).

Each dataset is a stratified 70/30 split of scikit-learn's bundled data, trained
with its ``RECIPES`` entry (see ``qstore.training.reference_datasets`` for the
exact preprocessing, models and targets, which are the issue's); the
training split is imported into the database and streamed from LMDB in
shuffled batches; the test split is never seen during training.
"""
from __future__ import annotations

import pytest

from qstore.training import VQC, HybridModel, Trainer, VQCRegressor, model_from_config
from qstore.training.reference_datasets import RECIPES, Recipe


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=list(RECIPES))
async def test_vqc_reaches_target_accuracy(fastdb, reference, recipe: Recipe) -> None:
    data = reference(recipe.dataset, recipe.components)
    await fastdb.import_dataset(recipe.dataset, data.X_train, data.y_train)
    model = model_from_config(recipe.model)
    trainer = Trainer(fastdb, model, optimizer="adam", lr=recipe.lr, batch_size=recipe.batch_size, seed=0)
    history = await trainer.fit(recipe.dataset, epochs=recipe.epochs)
    accuracy = await trainer.evaluate(data.X_test, data.y_test)
    assert accuracy >= recipe.target, (recipe.dataset, accuracy, history["accuracy"][-5:])
    assert model.score(data.X_test, data.y_test) == accuracy
    assert history["loss"][-1] < history["loss"][0]


async def test_amplitude_encoding_of_raw_digit_pixels(fastdb, reference) -> None:
    """64 pixels as the amplitudes of 6 qubits: no PCA at all."""
    data = reference("digits-01", None)
    await fastdb.import_dataset("pixels", data.X_train, data.y_train)
    trainer = Trainer(fastdb, VQC(6, 2, 2, encoding="amplitude"), lr=0.05, batch_size=32, seed=0)
    await trainer.fit("pixels", epochs=10)
    assert await trainer.evaluate(data.X_test, data.y_test) >= 0.98


async def test_hybrid_model_trains_end_to_end_on_moons(reference) -> None:
    data = reference("moons", None)
    trainer = Trainer(None, HybridModel(2, 2, 2, hidden=(8,), head=(4,)), lr=0.05, batch_size=16, seed=0)
    history = await trainer.fit((data.X_train, data.y_train), epochs=30)
    assert await trainer.evaluate(data.X_test, data.y_test) >= 0.95, history["accuracy"][-5:]


async def test_regressor_fits_a_smooth_function() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(200, 2))
    y = np.sin(2 * X[:, 0]) * np.cos(X[:, 1]) + 0.5
    trainer = Trainer(None, VQCRegressor(2, 3, reupload=True), lr=0.05, batch_size=16, seed=0)
    history = await trainer.fit((X[:140], y[:140]), epochs=40)
    assert history["r2"][-1] > history["r2"][0]
    assert await trainer.evaluate(X[140:], y[140:]) >= 0.9
