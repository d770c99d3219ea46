"""The quantum autoencoder: anomaly detection against PCA reconstruction error, checkpoints, jobs."""
from __future__ import annotations

import numpy as np
import pytest

from qstore.errors import QStoreError
from qstore.training import QuantumAutoencoder, Trainer, model_from_config
from qstore.training.reference_datasets import ANOMALY_RECIPES, load_anomaly, pca_anomaly_auroc

LATENT = 4                                  # latent qubits (angle) or latent amplitudes (amplitude encoding)


async def _auroc(dataset: str, seed: int) -> tuple[QuantumAutoencoder, float, float]:
    """Test AUROC of the recipe's autoencoder (settings chosen on validation rows only) and of PCA(LATENT)."""
    from sklearn.metrics import roc_auc_score

    recipe = ANOMALY_RECIPES[dataset]
    data = load_anomaly(dataset)
    ae = model_from_config(recipe.model)
    assert isinstance(ae, QuantumAutoencoder)
    assert (ae.latent_qubits if recipe.model["encoding"] == "angle" else 2 ** ae.latent_qubits) == LATENT
    await Trainer(None, ae, lr=recipe.lr, batch_size=recipe.batch_size, seed=seed).fit(
        (data.Z_fit, np.zeros(len(data.Z_fit))), epochs=recipe.epochs)
    quantum = float(roc_auc_score(data.test_anomalous, ae.anomaly_score(data.Z_test)))
    pca = pca_anomaly_auroc(data.Z_fit, data.Z_test, data.test_anomalous, LATENT)
    print(f"{dataset} seed {seed}: test AUROC quantum autoencoder {quantum:.3f}, PCA({LATENT}) {pca:.3f}")
    return ae, quantum, pca


def test_validation_and_test_rows_are_disjoint() -> None:
    """Selection never sees a test row: the validation anomalies come from the non-test part."""
    from sklearn import datasets

    for name, load in (("digits", datasets.load_digits), ("breast-cancer", datasets.load_breast_cancer)):
        data = load_anomaly(name, components=8)
        n = len(load(return_X_y=True)[1])
        assert len(data.Z_fit) + len(data.Z_val) + len(data.Z_test) == n
        assert data.val_anomalous.any() and (~data.val_anomalous).any()
        rows = {tuple(np.round(r, 9)) for r in np.concatenate([data.Z_fit, data.Z_val])}
        assert not rows & {tuple(np.round(r, 9)) for r in data.Z_test}


@pytest.mark.parametrize("dataset", ["digits", "breast-cancer"])
async def test_anomaly_auroc_is_at_least_pca_reconstruction_error(dataset: str) -> None:
    """Trained on the normal class only (digit 0; benign), 8 PCA features, 4 latent vs 4 components."""
    ae, quantum, pca = await _auroc(dataset, seed=0)
    assert quantum >= pca, (quantum, pca)
    data = load_anomaly(dataset)
    threshold = ae.calibrate(data.Z_fit, quantile=0.95)
    assert np.mean(ae.anomaly_score(data.Z_fit) > threshold) <= 0.05
    anomalous = data.test_anomalous
    assert np.mean(ae.is_anomaly(data.Z_test[anomalous])) > np.mean(ae.is_anomaly(data.Z_test[~anomalous]))


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "breast-cancer"])
async def test_anomaly_auroc_against_pca_over_five_seeds(dataset: str) -> None:
    """Seeds 0-4: the mean test AUROC is at least PCA(4)'s on both datasets, and every seed's is on digits.
    On breast cancer one seed of five falls below (seed 2: 0.843 against 0.893, benchmarks/README.md)."""
    results = [await _auroc(dataset, seed) for seed in range(5)]
    quantum, pca = np.array([q for _, q, _ in results]), results[0][2]
    assert quantum.mean() >= pca, (quantum, pca)
    if dataset == "digits":
        assert (quantum >= pca).all(), (quantum, pca)


async def test_autoencoder_checkpoints_and_resumes(fastdb) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((40, 4))
    await fastdb.import_dataset("normal", X, np.zeros(40, dtype=int))
    ae = QuantumAutoencoder(n_qubits=2, latent_qubits=1, layers=2, encoding="amplitude")
    trainer = Trainer(fastdb, ae, batch_size=10, seed=0, run="qae")
    history = await trainer.fit("normal", epochs=2, checkpoint_every=1)
    assert history["loss"][-1] < history["loss"][0] and history["fidelity"][-1] > history["fidelity"][0]
    ae.calibrate(X)
    resumed = await Trainer.from_checkpoint(fastdb, trainer.checkpoints[-1])
    assert isinstance(resumed.model, QuantumAutoencoder)
    np.testing.assert_array_equal(resumed.model.params, ae.params)
    np.testing.assert_allclose(resumed.model.anomaly_score(X), ae.anomaly_score(X))
    assert model_from_config(ae.config()).config() == ae.config()


def test_bad_latent_size_is_a_typed_error() -> None:
    for latent in (0, 3, 1.5):
        with pytest.raises(QStoreError) as err:
            QuantumAutoencoder(n_qubits=3, latent_qubits=latent, layers=1)
        assert err.value.code == "invalid_argument"


async def test_autoencoder_trains_on_an_unlabelled_vector_collection(fastdb) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    col = await fastdb.create_collection("embeddings", dim=4)
    await col.upsert([f"v{i}" for i in range(30)], X, [{"source": "sensor"}] * 30)
    ae = QuantumAutoencoder(n_qubits=4, latent_qubits=2, layers=1, encoding="angle")
    history = await Trainer(fastdb, ae, batch_size=10, seed=0).fit("embeddings", epochs=3)
    assert history["fidelity"][-1] > history["fidelity"][0]


async def test_autoencoder_runs_as_a_train_job(server) -> None:
    from qstore_client import AsyncClient

    rng = np.random.default_rng(2)
    async with AsyncClient(server.url) as client:
        col = await client.create_collection("job-vectors", dim=4)
        await col.upsert([f"r{i}" for i in range(24)], rng.random((24, 4)).astype(np.float32))
        config = QuantumAutoencoder(n_qubits=4, latent_qubits=3, layers=1, encoding="angle").config()
        job = await client.start_job("train", {"dataset": "job-vectors", "model": config, "epochs": 2,
                                               "batch_size": 8, "run": "qae-job", "shots": 256,
                                               "gradient": "parameter-shift"})
        done = await client.wait_job(job.id, timeout=120)
        assert done.state == "succeeded", done.error
        result = await client.job_result(job.id)
        assert len(result["history"]["fidelity"]) == 2 and result["history"]["grad_var"][0] > 0
        ckpt = await client.load_checkpoint(result["latest_checkpoint"])
        assert ckpt["model"]["config"]["type"] == "quantum_autoencoder" and ckpt["config"]["shots"] == 256
