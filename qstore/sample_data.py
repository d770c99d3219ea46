"""Real sentence embeddings for demos, tests and benchmarks, with a synthetic fallback.

The shared fixture ``changelog-minilm-20k.npy`` (20,000 × 384 unit rows, float16) lives
outside the repository; set ``QSTORE_DATASETS`` to its folder, or keep it at
``../shared/datasets`` beside the checkout. Nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

NAME = "changelog-minilm-20k"


def dataset_dir() -> Path:
    env = os.environ.get("QSTORE_DATASETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"


def load_embeddings(n: int | None = None, seed: int = 0) -> tuple[np.ndarray, list[str] | None, str]:
    """(vectors float32 (n, 384), sentences or None, source). Falls back to clustered
    synthetic unit vectors (same shape) when the shared file is missing."""
    path = dataset_dir() / f"{NAME}.npy"
    if path.exists():
        X = np.load(path).astype(np.float32)
        text_path = path.with_suffix(".txt")
        texts = text_path.read_text().splitlines() if text_path.exists() else None
        if n is not None:
            X, texts = X[:n], (texts[:n] if texts else None)
        return X, texts, str(path)
    rng = np.random.default_rng(seed)
    n = n or 20_000
    centers = rng.normal(size=(64, 384)).astype(np.float32)
    X = centers[rng.integers(0, 64, n)] + 0.35 * rng.normal(size=(n, 384)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), None, "synthetic"
