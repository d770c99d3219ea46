"""scikit-learn's bundled datasets, split 70/30 and reduced to a qubit-sized feature count.

Used by the accuracy tests and the training benchmark, which share ``RECIPES``: the
model, epochs and batch size each dataset is trained with, and the test accuracy it must reach.
Needs scikit-learn (the ``test`` / ``bench`` extras); nothing is downloaded: every
dataset here ships inside scikit-learn or is generated.

Preprocessing is fitted on the training split only (no test leakage):

* ``iris-binary``: setosa vs versicolor, the 4 raw features.
* ``iris``: all 3 classes, the 4 raw features.
* ``breast-cancer``: 30 features, standardised, then PCA to ``components`` (default 4).
* ``digits-01``: 8x8 digits 0 and 1, PCA of the 64 pixels to ``components`` (default 4);
  with ``components=None`` the raw 64 pixels (for amplitude encoding on 6 qubits).
* ``moons``: ``make_moons(300, noise=0.1)``, the 2 raw features.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qstore.errors import error

REFERENCE_DATASETS = ("iris-binary", "iris", "breast-cancer", "digits-01", "moons")


@dataclass
class ReferenceData:
    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    preprocessing: str


@dataclass(frozen=True)
class Recipe:
    """How one reference dataset is trained (Adam, statevector, adjoint) and the test accuracy it must reach."""

    dataset: str
    components: int | None
    model: dict[str, Any] = field(hash=False)
    epochs: int
    batch_size: int
    target: float
    lr: float = 0.05


RECIPES: dict[str, Recipe] = {r.dataset: r for r in (
    Recipe("iris-binary", 4, {"type": "vqc", "n_qubits": 4, "layers": 2, "n_classes": 2}, 10, 16, 0.97),
    Recipe("iris", 4, {"type": "vqc", "n_qubits": 4, "layers": 3, "n_classes": 3}, 40, 16, 0.90),
    Recipe("breast-cancer", 6, {"type": "vqc", "n_qubits": 6, "layers": 3, "n_classes": 2}, 20, 32, 0.92),
    Recipe("digits-01", 4, {"type": "vqc", "n_qubits": 4, "layers": 2, "n_classes": 2}, 10, 32, 0.98),
    Recipe("moons", None, {"type": "vqc", "n_qubits": 2, "layers": 4, "n_classes": 2, "reupload": True},
           40, 16, 0.95),
)}


def load_reference(name: str, components: int | None = 4, seed: int = 0, test_size: float = 0.3) -> ReferenceData:
    """A stratified train/test split of a bundled dataset, preprocessed as the module docstring says."""
    from sklearn import datasets
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    reduce = False
    if name in ("iris-binary", "iris"):
        X, y = datasets.load_iris(return_X_y=True)
        if name == "iris-binary":
            X, y = X[y < 2], y[y < 2]
        how = "4 raw features"
    elif name == "breast-cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        reduce, how = True, f"standardise 30 features, PCA to {components}"
    elif name == "digits-01":
        X, y = datasets.load_digits(n_class=2, return_X_y=True)
        reduce = components is not None
        how = f"PCA of 64 pixels to {components}" if reduce else "64 raw pixels"
    elif name == "moons":
        X, y = datasets.make_moons(n_samples=300, noise=0.1, random_state=seed)
        how = "2 raw features"
    else:
        raise error("invalid_argument", f"unknown reference dataset {name!r}; choose one of {REFERENCE_DATASETS}")
    X_tr, X_te, y_tr, y_te = train_test_split(X.astype(np.float64), y, test_size=test_size, random_state=seed,
                                              stratify=y)
    if reduce:
        if name == "breast-cancer":
            scaler = StandardScaler().fit(X_tr)
            X_tr, X_te = scaler.transform(X_tr), scaler.transform(X_te)
        pca = PCA(n_components=components, random_state=seed).fit(X_tr)
        X_tr, X_te = pca.transform(X_tr), pca.transform(X_te)
    return ReferenceData(X_tr, X_te, y_tr, y_te, how + f"; stratified {1 - test_size:.0%}/{test_size:.0%} split")


# -- anomaly detection (the quantum autoencoder) ------------------------------------------------

ANOMALY_DATASETS = ("digits", "breast-cancer")


@dataclass(frozen=True)
class AnomalyRecipe:
    """How the autoencoder is trained on one dataset's normal class (Adam, batches of 16)."""

    dataset: str
    normal: str
    model: dict[str, Any] = field(hash=False)
    lr: float = 0.1
    epochs: int = 40
    batch_size: int = 16


#: chosen on validation rows only (``benchmarks/noise.py --only autoencoder-selection``; protocol and
#: grid in benchmarks/README.md, "Quantum autoencoder")
ANOMALY_RECIPES: dict[str, AnomalyRecipe] = {r.dataset: r for r in (
    AnomalyRecipe("digits", "digit 0", {"type": "quantum_autoencoder", "n_qubits": 8, "latent_qubits": 4,
                                        "layers": 1, "encoding": "angle", "entanglement": "linear"},
                  lr=0.2, epochs=40),
    AnomalyRecipe("breast-cancer", "benign", {"type": "quantum_autoencoder", "n_qubits": 8, "latent_qubits": 4,
                                              "layers": 4, "encoding": "angle", "entanglement": "linear"},
                  lr=0.2, epochs=20),
)}


@dataclass
class AnomalyData:
    """Normal fit rows; validation rows (normals, then anomalies) and their flags; test rows and flags."""

    Z_fit: np.ndarray
    Z_val: np.ndarray
    val_anomalous: np.ndarray
    Z_test: np.ndarray
    test_anomalous: np.ndarray


def load_anomaly(name: str, components: int = 8, seed: int = 0, test_size: float = 0.3,
                 val_size: float = 0.25) -> AnomalyData:
    """Digits with 0 as the normal class (raw pixels), breast cancer with benign as normal (standardised).

    A stratified ``test_size`` split is the test set. Of the rest, the normal rows are split into fit rows
    and ``val_size`` validation normals, and the anomalous rows are the validation anomalies (so validation
    and test share no row). Scaling and PCA to ``components`` are fitted on the fit rows only."""
    from sklearn import datasets
    from sklearn.decomposition import PCA
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
        normal = y == 0
    elif name == "breast-cancer":
        X, y = datasets.load_breast_cancer(return_X_y=True)
        normal = y == 1
    else:
        raise error("invalid_argument", f"unknown anomaly dataset {name!r}; choose one of {ANOMALY_DATASETS}")
    X_rest, X_te, n_rest, n_te = train_test_split(X.astype(np.float64), normal, test_size=test_size,
                                                  random_state=seed, stratify=y)
    X_fit, X_val_normal = train_test_split(X_rest[n_rest], test_size=val_size, random_state=seed)
    X_val = np.concatenate([X_val_normal, X_rest[~n_rest]])
    val_anomalous = np.arange(len(X_val)) >= len(X_val_normal)
    scaler = StandardScaler(with_mean=name != "digits", with_std=name != "digits").fit(X_fit)
    pca = PCA(components, random_state=seed).fit(scaler.transform(X_fit))
    Z_fit, Z_val, Z_te = (pca.transform(scaler.transform(a)) for a in (X_fit, X_val, X_te))
    return AnomalyData(Z_fit, Z_val, val_anomalous, Z_te, ~n_te)


def pca_anomaly_auroc(Z_train: np.ndarray, Z_test: np.ndarray, anomalous: np.ndarray, latent: int) -> float:
    """AUROC of PCA reconstruction error with ``latent`` components: the classical baseline."""
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    p = PCA(latent).fit(Z_train)
    return float(roc_auc_score(anomalous, ((Z_test - p.inverse_transform(p.transform(Z_test))) ** 2).sum(axis=1)))
