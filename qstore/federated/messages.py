"""What travels between coordinator and participants, and its validation.

Only model parameters, training settings, counts and metrics cross the wire; a
participant's rows never do. These maps ride in job params and job results, which
the protocol codec (``Document``) carries with NumPy arrays as ``$ndarray`` tensors.

* ``RoundTask`` (coordinator -> participant): global parameters, the model config
  and fitted state (feature scaling, classes), the local dataset name and the
  local training settings.
* ``Update`` (participant -> coordinator): the parameter delta, the number of
  samples trained on, local metrics and the time taken.
* ``Summary`` (participant -> coordinator, once, when the model is unfitted): row
  count, per-column min / max / mean / std and the distinct labels, to fit the
  global feature scaling and classes as centralised training on the union would.

Everything from the other side is checked: a malformed or wrong-shaped message
raises ``InvalidArgument`` and the coordinator leaves that participant out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qstore.errors import QStoreError, error
from qstore.training.data import DataSummary, FeatureStats

from .compression import Compression, decompress, wire_bytes


def _fail(what: str, why: str, code: str = "invalid_argument") -> QStoreError:
    return error(code, f"{what}: {why}")


def _fields(doc: Any, what: str, required: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise _fail(what, f"expected a map, got {type(doc).__name__}")
    unknown = set(doc) - required - optional
    if unknown:
        raise _fail(what, f"unknown field(s) {sorted(map(str, unknown))}", "unknown_field")
    missing = required - set(doc)
    if missing:
        raise _fail(what, f"missing field(s) {sorted(missing)}", "missing_field")
    return doc


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise _fail(what, f"expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _number(value: Any, what: str, minimum: float | None = None, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = "" if minimum is None else f" >= {minimum:g}"
        raise _fail(what, f"expected a finite number{bound}, got {value!r}")
    return float(value)


def _vector(value: Any, what: str, length: int | None = None) -> np.ndarray:
    """A finite float64 vector; lists are accepted for JSON peers."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "iuf":
        array = value.astype(np.float64)
    elif isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        array = np.asarray(value, dtype=np.float64)
    else:
        raise _fail(what, f"expected a numeric vector, got {type(value).__name__}")
    if array.ndim != 1 or (length is not None and array.shape[0] != length):
        want = f"({length},)" if length is not None else "1-D"
        raise _fail(what, f"expected shape {want}, got {array.shape}")
    if not np.isfinite(array).all():
        raise _fail(what, "NaN or Inf")
    return array


@dataclass
class RoundTask:
    round: int
    params: np.ndarray
    model: dict[str, Any]
    state: dict[str, Any]
    dataset: str = "local"
    epochs: int = 1
    batch_size: int = 32
    optimizer: str = "adam"
    lr: float = 0.05
    mu: float = 0.0
    clip: float | None = None
    noise_multiplier: float | None = None
    seed: int = 0
    backend: str = "statevector"
    gradient: str = "adjoint"
    #: ``compression.Compression`` as a map, or None to send float64 deltas
    compression: dict[str, Any] | None = None
    #: the coordinator's run name: keys the participant's error-feedback memory
    run: str = ""

    FIELDS = ("round", "params", "model", "state", "dataset", "epochs", "batch_size", "optimizer", "lr", "mu",
              "clip", "noise_multiplier", "seed", "backend", "gradient", "compression", "run")
    REQUIRED = frozenset({"round", "params", "model", "state"})

    @property
    def local_dp(self) -> bool:
        return self.noise_multiplier is not None

    def to_wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_wire(cls, doc: Any) -> RoundTask:
        what = "federated task"
        _fields(doc, what, set(cls.REQUIRED), set(cls.FIELDS))
        if not isinstance(doc["model"], dict) or not isinstance(doc["state"], dict):
            raise _fail(what, "model (a config map) and state (a map) are required")
        for name in ("dataset", "optimizer", "backend", "gradient", "run"):
            if name in doc and not isinstance(doc[name], str):
                raise _fail(f"{what}.{name}", f"expected a string, got {type(doc[name]).__name__}")
        compression = Compression.of(doc.get("compression"))
        task = cls(round=_int(doc["round"], f"{what}.round"), params=_vector(doc["params"], f"{what}.params"),
                   model=doc["model"], state=doc["state"],
                   compression=None if compression is None else compression.to_wire(),
                   **{k: doc[k] for k in ("dataset", "optimizer", "backend", "gradient", "run") if k in doc})
        if "epochs" in doc:
            task.epochs = _int(doc["epochs"], f"{what}.epochs", 1)
        if "batch_size" in doc:
            task.batch_size = _int(doc["batch_size"], f"{what}.batch_size", 1)
        if "seed" in doc:
            task.seed = _int(doc["seed"], f"{what}.seed")
        if "lr" in doc:
            task.lr = _number(doc["lr"], f"{what}.lr", 0.0)
        if "mu" in doc:
            task.mu = _number(doc["mu"], f"{what}.mu", 0.0)
        task.clip = _number(doc.get("clip"), f"{what}.clip", 0.0, allow_none=True)
        task.noise_multiplier = _number(doc.get("noise_multiplier"), f"{what}.noise_multiplier", 0.0,
                                        allow_none=True)
        if task.local_dp and not task.clip:
            raise _fail(what, "local DP noise needs a positive clip norm")
        return task


@dataclass
class Update:
    round: int
    delta: np.ndarray
    n: int
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: local optimizer steps taken (FedNova normalises by it); 0 when unknown
    steps: int = 0
    #: the wire form of a compressed delta (``compression``); `delta` is then its decoded value
    compressed: dict[str, Any] | None = None

    FIELDS = ("round", "delta", "n", "metrics", "seconds", "steps")

    def to_wire(self) -> dict[str, Any]:
        doc = {"round": self.round, "n": self.n, "metrics": dict(self.metrics), "seconds": self.seconds,
               "steps": self.steps}
        if self.compressed is not None:
            return {**doc, "compressed": self.compressed}
        return {**doc, "delta": np.asarray(self.delta, dtype=np.float64)}

    @property
    def wire_bytes(self) -> int:
        """Payload bytes of the delta as sent (float64, or the compressed codes and scales)."""
        return 8 * len(self.delta) if self.compressed is None else wire_bytes(self.compressed)

    @classmethod
    def from_wire(cls, doc: Any, n_params: int, round: int) -> Update:
        """Validate a participant's reply for this round and this model size."""
        what = "update"
        _fields(doc, what, {"round", "n"}, {"delta", "compressed", "metrics", "seconds", "steps"})
        if ("delta" in doc) == ("compressed" in doc):
            raise _fail(what, "expected exactly one of delta and compressed", "missing_field")
        got_round = _int(doc["round"], f"{what}.round")
        if got_round != round:
            raise _fail(what, f"is for round {got_round}, this is round {round}")
        metrics = doc.get("metrics") or {}
        if not isinstance(metrics, dict):
            raise _fail(f"{what}.metrics", "expected a map")
        compressed = doc.get("compressed")
        delta = decompress(compressed, n_params) if compressed is not None \
            else _vector(doc["delta"], f"{what}.delta", n_params)
        return cls(round=got_round, delta=_vector(delta, f"{what}.delta", n_params), compressed=compressed,
                   n=_int(doc["n"], f"{what}.n", 1),
                   metrics={str(k): _number(v, f"{what}.metrics.{k}") for k, v in metrics.items()},
                   seconds=_number(doc.get("seconds", 0.0), f"{what}.seconds", 0.0),
                   steps=_int(doc.get("steps", 0), f"{what}.steps"))


@dataclass
class Summary:
    """Column statistics and label set of one participant's data (or of the union, merged)."""

    n: int
    minimum: np.ndarray
    maximum: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    labels: np.ndarray
    #: rows per label (aligned with `labels`), for QUBO selection; None when not reported
    counts: np.ndarray | None = None

    @classmethod
    def of(cls, X: np.ndarray, y: np.ndarray) -> Summary:
        stats = FeatureStats.of(np.asarray(X, dtype=np.float64))
        labels, counts = np.unique(np.asarray(y), return_counts=True)
        return cls(stats.n, stats.minimum, stats.maximum, stats.mean, stats.std, labels, counts.astype(np.int64))

    def to_wire(self) -> dict[str, Any]:
        doc = {"n": self.n, "min": self.minimum, "max": self.maximum, "mean": self.mean, "std": self.std,
               "labels": self.labels}
        return doc if self.counts is None else {**doc, "counts": self.counts}

    def label_counts(self) -> dict[Any, int]:
        if self.counts is None:
            return {label: 1 for label in self.labels.tolist()}
        return dict(zip(self.labels.tolist(), self.counts.tolist()))

    @classmethod
    def from_wire(cls, doc: Any) -> Summary:
        what = "summary"
        _fields(doc, what, {"n", "min", "max", "mean", "std", "labels"}, {"counts"})
        columns = [_vector(doc[k], f"{what}.{k}") for k in ("min", "max", "mean", "std")]
        if len({c.shape for c in columns}) != 1:
            raise _fail(what, "min, max, mean and std differ in length")
        labels = doc["labels"]
        if isinstance(labels, list):
            labels = np.asarray(labels)
        if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iufUb":
            raise _fail(f"{what}.labels", "expected a 1-D array of numbers or strings")
        counts = None
        if doc.get("counts") is not None:
            counts = _vector(doc["counts"], f"{what}.counts", len(labels))
            if (counts < 0).any() or (counts != np.round(counts)).any():
                raise _fail(f"{what}.counts", "expected non-negative integers")
            counts = counts.astype(np.int64)
        return cls(_int(doc["n"], f"{what}.n", 1), *columns, labels, counts)

    @classmethod
    def merge(cls, parts: list[Summary], f: int = 0) -> Summary:
        """The statistics of the union of the parts' rows (pooled mean and variance).

        With f > 0 (a Byzantine-robust run), no f parts can steer the result: each column's
        minimum is the (f+1)-th smallest reported, its maximum the (f+1)-th largest, mean and
        std the medians of the reports, and a label counts only if more than f parts hold it.
        """
        if not parts:
            raise error("unavailable", "no participant summary to merge")
        widths = {p.mean.shape for p in parts}
        if len(widths) != 1:
            raise error("invalid_features",
                        f"participants hold different feature counts: {sorted(w[0] for w in widths)}")
        if f > 0:
            return cls._robust_merge(parts, f)
        n = np.array([p.n for p in parts], dtype=np.float64)
        means = np.stack([p.mean for p in parts])
        mean = n @ means / n.sum()
        second = n @ (np.stack([p.std for p in parts]) ** 2 + means ** 2) / n.sum()
        labels = np.unique(np.concatenate([p.labels for p in parts]))
        return cls(int(n.sum()), np.min([p.minimum for p in parts], axis=0), np.max([p.maximum for p in parts], axis=0),
                   mean, np.sqrt(np.maximum(second - mean ** 2, 0.0)), labels)

    @classmethod
    def _robust_merge(cls, parts: list[Summary], f: int) -> Summary:
        if len(parts) <= 2 * f:
            raise error("unavailable", f"{len(parts)} summaries cannot outvote f={f} Byzantine participants "
                                       f"(needs more than {2 * f})")
        labels, counts = np.unique(np.concatenate([p.labels for p in parts]), return_counts=True)
        return cls(int(np.median([p.n for p in parts]) * len(parts)),
                   np.sort([p.minimum for p in parts], axis=0)[f], np.sort([p.maximum for p in parts], axis=0)[-f - 1],
                   np.median([p.mean for p in parts], axis=0), np.median([p.std for p in parts], axis=0),
                   labels[counts > f])

    def data_summary(self) -> DataSummary:
        """As the training engine's ``DataSummary`` (what ``Trainer`` learns in its first pass)."""
        stats = FeatureStats(self.n, self.minimum, self.maximum, self.mean, self.std)
        return DataSummary.of(self.mean.shape[0], stats, self.labels)
