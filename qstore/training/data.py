"""Training data: where batches come from, feature scaling and label encoding.

A source is either a dataset collection in the database (read in shuffled
batches straight from LMDB by record id) or a pair of in-memory arrays. Both
first make one pass to learn the row ids, the feature statistics the scaler
needs and the set of labels, so bad labels fail before the first step.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qstore.errors import error
from qstore_client.api import QStoreAPI

log = logging.getLogger(__name__)

SCALINGS = ("minmax", "standard", "none")
SCAN_PAGE = 4096


@dataclass
class FeatureStats:
    """Column statistics of a feature matrix, enough for every scaling."""

    n: int
    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray) -> FeatureStats:
        return cls(len(X), X.min(axis=0), X.max(axis=0), X.mean(axis=0), X.std(axis=0))


@dataclass
class FeatureScaler:
    """``x -> (x - offset) / scale`` per column, fitted once on the training data.

    ``minmax`` maps the training range to [0, 1], which angle encoding turns into
    RY angles in [0, pi]; ``standard`` gives zero mean and unit variance (classical
    layers); ``none`` passes features through. Constant columns get scale 1.
    """

    kind: str = "minmax"
    offset: np.ndarray | None = None
    scale: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCALINGS:
            raise error("invalid_argument", f"scaling must be one of {SCALINGS}, got {self.kind!r}")

    @property
    def fitted(self) -> bool:
        return self.kind == "none" or self.offset is not None

    def fit(self, stats: FeatureStats) -> None:
        if self.kind == "minmax":
            offset, scale = stats.minimum, stats.maximum - stats.minimum
        elif self.kind == "standard":
            offset, scale = stats.mean, stats.std
        else:
            return
        self.offset = np.asarray(offset, dtype=np.float64)
        self.scale = np.where(scale > 0, scale, 1.0).astype(np.float64)

    def transform(self, X: np.ndarray) -> np.ndarray:
        if self.kind == "none":
            return X
        if self.offset is None:
            raise error("invalid_argument", "the model has not seen training data yet: fit it before predicting")
        if X.shape[1] != self.offset.shape[0]:
            raise error("invalid_features", f"features must have {self.offset.shape[0]} columns, got {X.shape[1]}")
        return (X - self.offset) / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": self.offset, "scale": self.scale}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FeatureScaler:
        return cls(doc["kind"], _array_or_none(doc.get("offset")), _array_or_none(doc.get("scale")))


def _array_or_none(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float64)


def check_features(X: Any, n_features: int | None = None) -> np.ndarray:
    """(B, F) finite float64 features, or ``invalid_features`` / ``empty_dataset``."""
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise error("invalid_features", f"features must be numeric: {exc}") from None
    if X.ndim == 1 and n_features is not None and X.shape[0] == n_features:
        X = X[None, :]
    if X.ndim != 2:
        raise error("invalid_features", f"features must be a 2-D array (samples x features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise error("empty_dataset", "the dataset is empty: at least one sample is needed")
    if n_features is not None and X.shape[1] != n_features:
        raise error("invalid_features", f"the model takes {n_features} features, got {X.shape[1]}")
    if not np.all(np.isfinite(X)):
        raise error("invalid_features", "features contain NaN or Inf")
    return X


@dataclass
class DataSummary:
    """What one pass over a source learnt."""

    n: int
    n_features: int
    stats: FeatureStats
    labels: np.ndarray                    # distinct labels, sorted
    label_stats: FeatureStats | None      # of numeric labels (regression targets)

    @classmethod
    def of(cls, n_features: int, stats: FeatureStats, y: np.ndarray) -> DataSummary:
        distinct = distinct_labels(y)
        numeric = y.dtype.kind in "iuf"
        label_stats = FeatureStats.of(y.astype(np.float64)[:, None]) if numeric else None
        return cls(stats.n, n_features, stats, distinct, label_stats)


class DataSource(Protocol):
    """Rows addressed by position 0..n-1; ``batch`` fetches any subset, in the order given."""

    name: str

    async def summary(self) -> DataSummary: ...

    async def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class ArraySource:
    """In-memory (X, y)."""

    def __init__(self, X: Any, y: Any, name: str = "arrays"):
        self.X = check_features(X)
        y = np.asarray(y)
        if y.shape != (self.X.shape[0],):
            raise error("invalid_labels", f"y must hold one label per row: shape {y.shape} for {self.X.shape[0]} rows")
        self.y = y
        self.name = name

    async def summary(self) -> DataSummary:
        return DataSummary.of(self.X.shape[1], FeatureStats.of(self.X), self.y)

    async def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.X[rows], self.y[rows]


class CollectionSource:
    """A dataset collection read from LMDB: one scan for ids and statistics, then batches by id.

    ``labelled=False`` (models that learn without labels) also reads any vector collection by
    name, and every row's label is 0.
    """

    def __init__(self, db: QStoreAPI, name: str, labelled: bool = True):
        self.db = db
        self.name = name
        self.labelled = labelled
        self._collection: Any = None
        self._ids: list[str] = []

    async def summary(self) -> DataSummary:
        if self.labelled or self.name in await self.db.list_datasets():
            info = await self.db.dataset_info(self.name)
            collection = info["collection"]
        else:
            collection = self.name
        self._collection = await self.db.collection(collection)
        ids: list[str] = []
        labels: list[Any] = []
        acc: _StatsAccumulator | None = None
        cursor = None
        while True:
            page = await self._collection.scroll(limit=SCAN_PAGE, cursor=cursor)
            if page.records:
                ids.extend(r.id for r in page.records)
                labels.extend(r.metadata.get("label") if self.labelled else 0 for r in page.records)
                block = np.stack([r.vector for r in page.records]).astype(np.float64)
                acc = acc or _StatsAccumulator(block.shape[1])
                acc.add(block)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        if not ids or acc is None:
            raise error("empty_dataset", f"dataset {self.name!r} has no rows")
        n_features = acc.minimum.shape[0]
        if any(v is None for v in labels):
            raise error("invalid_labels", f"dataset {self.name!r} has rows without a label")
        self._ids = ids
        log.debug("dataset %s: %d rows, %d features", self.name, len(ids), n_features)
        return DataSummary.of(n_features, acc.result(), np.asarray(labels))

    async def batch(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = [self._ids[i] for i in rows]
        records = await self._collection.get(ids)
        missing = [i for i, r in zip(ids, records) if r is None]
        if missing:
            raise error("conflict", f"dataset {self.name!r} changed during training: rows {missing[:5]} are gone")
        X = np.stack([r.vector for r in records]).astype(np.float64)
        if not self.labelled:
            return X, np.zeros(len(records), dtype=np.int64)
        return X, np.asarray([r.metadata["label"] for r in records])


class _StatsAccumulator:
    """Streaming column min, max, mean and variance (Chan's parallel update)."""

    def __init__(self, n_features: int):
        self.n = 0
        self.minimum = np.full(n_features, np.inf)
        self.maximum = np.full(n_features, -np.inf)
        self.mean = np.zeros(n_features)
        self.m2 = np.zeros(n_features)

    def add(self, X: np.ndarray) -> None:
        k = len(X)
        mean_b = X.mean(axis=0)
        m2_b = ((X - mean_b) ** 2).sum(axis=0)
        delta = mean_b - self.mean
        total = self.n + k
        self.mean = self.mean + delta * k / total
        self.m2 = self.m2 + m2_b + delta ** 2 * self.n * k / total
        self.n = total
        self.minimum = np.minimum(self.minimum, X.min(axis=0))
        self.maximum = np.maximum(self.maximum, X.max(axis=0))

    def result(self) -> FeatureStats:
        return FeatureStats(self.n, self.minimum, self.maximum, self.mean, np.sqrt(self.m2 / max(self.n, 1)))


def distinct_labels(y: np.ndarray) -> np.ndarray:
    """Sorted distinct labels; refuses NaN, infinities and unorderable mixtures."""
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        raise error("invalid_labels", "labels contain NaN or Inf")
    if y.dtype.kind == "O":
        kinds = {type(v) for v in y}
        if len(kinds) > 1:
            raise error("invalid_labels", f"labels mix types {sorted(k.__name__ for k in kinds)}")
        if kinds and kinds.pop() is float and not all(np.isfinite(y.astype(float))):
            raise error("invalid_labels", "labels contain NaN or Inf")
    try:
        return np.unique(y)
    except TypeError as exc:
        raise error("invalid_labels", f"labels cannot be ordered: {exc}") from None


def source_for(db: QStoreAPI | None, data: Any, labelled: bool = True) -> DataSource:
    """A dataset name (needs ``db``; with ``labelled=False`` any vector collection) or an ``(X, y)`` pair."""
    if isinstance(data, str):
        if db is None:
            raise error("invalid_argument", "training on a dataset name needs a database")
        return CollectionSource(db, data, labelled)
    if isinstance(data, tuple) and len(data) == 2:
        return ArraySource(*data)
    raise error("invalid_argument", "data must be a dataset name or an (X, y) tuple")


def epoch_batches(rng: np.random.Generator, n: int, batch_size: int) -> list[np.ndarray]:
    """A fresh shuffle of rows 0..n-1 cut into batches; the last may be short."""
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]
