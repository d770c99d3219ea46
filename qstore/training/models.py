"""Variational quantum models: the VQC classifier and its regression variant.

Every model keeps all trainable numbers in one flat vector ``params`` (circuit
angles first, then classical weights), so optimizers, checkpoints and federated
averaging see a plain array. Fitted, non-trainable state (feature scaling,
class labels, target scaling) lives in ``state()``.

How circuits run is a ``Runtime``: a backend from ``qstore.circuits`` and a
gradient method from ``qstore.circuits.gradients`` (``adjoint`` on the
statevector backend, ``parameter-shift`` anywhere). The trainer installs its
runtime on the model; ``predict`` uses whatever the model holds.
"""
from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from qstore.circuits import gradients
from qstore.circuits.backend import Backend, Pullback
from qstore.circuits.observables import ZObservables
from qstore.circuits.registry import get_backend
from qstore.circuits.shots import shot_vjp
from qstore.circuits.spec import CircuitSpec
from qstore.errors import error

from .data import DataSummary, FeatureScaler, check_features, distinct_labels
from .losses import cross_entropy, mean_squared_error, r2_score, softmax

log = logging.getLogger(__name__)

#: a model's circuit pullback: cotangent (B, K) -> (d/d circuit weights (W,), d/d inputs (B, F))
CircuitPullback = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class Runtime:
    """Where a model's circuits run and how they are differentiated."""

    backend: Backend = field(default_factory=lambda: get_backend("statevector"))
    gradient: str = "adjoint"
    gradient_options: dict[str, Any] = field(default_factory=dict)
    #: shot variance of the last parameter-shift gradient on a shot-sampling backend (P,), else None
    grad_variance: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.gradient = gradients.gradient_method(self.gradient, self.backend)

    def vjp(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, cotangent: np.ndarray,
            inputs: bool = False, observables: ZObservables | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        if self.backend.shots is not None and self.gradient == "parameter-shift" and theta.ndim == 1:
            X, theta, obs = self.backend.prepare(spec, X, theta, observables)
            g, g_x, self.grad_variance = shot_vjp(self.backend, spec, X, theta, cotangent, obs, inputs)
            return g, g_x
        return gradients.vjp(self.backend, spec, X, theta, cotangent, observables, method=self.gradient,
                             inputs=inputs, **self.gradient_options)

    def forward(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, inputs: bool = False
                ) -> tuple[np.ndarray, Pullback]:
        """Expectations and their pullback (cotangent -> ``vjp``'s result). With adjoint gradients the
        backend may share the forward pass between the two (a training step's forward, then backward)."""
        if self.gradient == "adjoint":
            return self.backend.expectations_vjp(spec, X, theta, inputs=inputs)
        z = self.backend.expectations(spec, X, theta)
        return z, lambda cotangent: self.vjp(spec, X, theta, cotangent, inputs=inputs)

    def metric(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, kind: str) -> np.ndarray:
        """Batch-averaged Fubini–Study metric of the circuit parameters (P, P)."""
        return self.backend.metric_tensor(spec, X, theta, kind).mean(axis=0)


@dataclass
class Evaluation:
    """One batch through the model: loss, its gradient (if asked) and the model outputs."""

    loss: float
    grad: np.ndarray | None
    outputs: np.ndarray


class Model(abc.ABC):
    """What the trainer, the optimizers and checkpoints need from a model."""

    kind: ClassVar[str]
    #: name of the per-epoch quality metric in histories: accuracy or r2
    metric_name: ClassVar[str]
    #: False for models that learn without labels: they also train on unlabelled vector collections
    uses_labels: ClassVar[bool] = True
    #: False for models that simulate their circuits themselves: the trainer's backend and shots do not apply
    runs_on_backend: ClassVar[bool] = True

    def __init__(self, scaling: str):
        self.scaler = FeatureScaler(scaling)
        self.params: np.ndarray | None = None
        self.runtime = Runtime()

    # -- description -----------------------------------------------------------------
    @property
    @abc.abstractmethod
    def n_params(self) -> int:
        """Length of the flat parameter vector."""

    @property
    @abc.abstractmethod
    def n_circuit_params(self) -> int:
        """The first ``n_circuit_params`` entries of ``params`` are circuit angles."""

    @property
    @abc.abstractmethod
    def n_features(self) -> int | None:
        """Features the model takes; None until bound to data."""

    @property
    def parameter_groups(self) -> dict[str, list[int]]:
        """Named groups of indices into ``params``, for fine-tuning (``Trainer(freeze=[...])``):
        by default the circuit angles, then the classical weights after them."""
        groups = {"circuit": list(range(self.n_circuit_params)),
                  "readout": list(range(self.n_circuit_params, self.n_params))}
        return {name: rows for name, rows in groups.items() if rows}

    @abc.abstractmethod
    def config(self) -> dict[str, Any]:
        """Constructor arguments (msgpack- and JSON-safe); ``registry.model_from_config`` inverts it."""

    @abc.abstractmethod
    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        """A fresh parameter vector drawn from ``rng``."""

    # -- data --------------------------------------------------------------------------
    def bind_features(self, n_features: int) -> None:
        """Fix the input width from the first data seen, if the constructor left it open."""
        if self.n_features is not None and self.n_features != n_features:
            raise error("invalid_features", f"the model takes {self.n_features} features, the data has {n_features}")

    @abc.abstractmethod
    def fit_targets(self, summary: DataSummary) -> None:
        """Learn the label space from the training data on first use; later, check the data fits it."""

    @abc.abstractmethod
    def targets(self, y: Any) -> np.ndarray:
        """Raw labels -> training targets (class indices or scaled values); ``invalid_labels`` otherwise."""

    def state(self) -> dict[str, Any]:
        """Fitted non-trainable state, for checkpoints."""
        return {"scaler": self.scaler.to_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        self.scaler = FeatureScaler.from_dict(state["scaler"])

    def features(self, X: Any) -> np.ndarray:
        """Validated, scaled features the circuit (or first classical layer) takes."""
        X = check_features(X, self.n_features)
        return self.scaler.transform(X)

    # -- compute -------------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate_batch(self, X: np.ndarray, targets: np.ndarray, params: np.ndarray, grad: bool) -> Evaluation:
        """Loss (batch mean) and optionally its gradient for scaled features ``X``."""

    @abc.abstractmethod
    def metric_tensor(self, X: np.ndarray, params: np.ndarray, kind: str) -> np.ndarray:
        """(n_params, n_params) metric for QNG on scaled features: Fubini–Study for circuit angles,
        identity for classical weights (which then take plain gradient steps)."""

    @abc.abstractmethod
    def score(self, X: Any, y: Any, params: np.ndarray | None = None) -> float:
        """Accuracy (classifiers) or R² (regression) on raw features and labels."""

    @abc.abstractmethod
    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        """``metric_name`` of outputs from ``evaluate_batch`` against training targets."""

    def _params(self, params: np.ndarray | None) -> np.ndarray:
        p = self.params if params is None else params
        if p is None:
            raise error("invalid_argument", "the model has no parameters yet: train it (or resume a checkpoint) first")
        return p


@dataclass(frozen=True)
class _Readout:
    """logits_k = scale_k * <Z_{r_k}> + bias_k; trainable scale and bias after the circuit angles."""

    n: int

    def split(self, params: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray]:
        return params[offset:offset + self.n], params[offset + self.n:offset + 2 * self.n]


class Classifier(Model):
    """Label handling, prediction and accuracy shared by the classifiers; they supply ``predict_proba``."""

    metric_name = "accuracy"

    def __init__(self, scaling: str, n_classes: int):
        super().__init__(scaling)
        if isinstance(n_classes, bool) or not isinstance(n_classes, (int, np.integer)) or n_classes < 2:
            raise error("invalid_argument", f"n_classes must be an integer >= 2, got {n_classes!r}")
        self.n_classes = int(n_classes)
        self.classes: np.ndarray | None = None

    # -- labels --------------------------------------------------------------------------
    def fit_targets(self, summary: DataSummary) -> None:
        """Integer labels within 0..K-1 map to themselves; otherwise exactly K distinct labels map in sorted order."""
        labels = summary.labels
        if self.classes is not None:
            self.targets(labels)
            return
        if labels.dtype.kind in "iub" and labels.min() >= 0 and labels.max() < self.n_classes:
            self.classes = np.arange(self.n_classes)
        elif len(labels) == self.n_classes:
            self.classes = labels
        else:
            raise error("invalid_labels", f"the model has n_classes={self.n_classes} but the labels are "
                                          f"{labels.tolist()[:10]}{'...' if len(labels) > 10 else ''}")

    def targets(self, y: Any) -> np.ndarray:
        if self.classes is None:
            raise error("invalid_argument", "the model has no classes yet: train it first")
        y = np.asarray(y)
        if y.ndim != 1:
            raise error("invalid_labels", f"labels must be 1-D, got shape {y.shape}")
        distinct_labels(y)
        try:
            index = np.searchsorted(self.classes, y)
        except TypeError:
            raise error("invalid_labels", f"labels {y[:5].tolist()} are not of the classes' type "
                                          f"{self.classes.dtype}") from None
        index = np.clip(index, 0, len(self.classes) - 1)
        bad = self.classes[index] != y
        if np.any(bad):
            raise error("invalid_labels", f"labels {np.unique(y[bad])[:10].tolist()} are not among the model's classes "
                                          f"{self.classes.tolist()}")
        return index

    def state(self) -> dict[str, Any]:
        return {**super().state(), "classes": self.classes}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        classes = state.get("classes")
        self.classes = None if classes is None else np.asarray(classes)

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(np.mean(outputs.argmax(axis=1) == targets))

    @abc.abstractmethod
    def predict_proba(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities (B, n_classes), columns in ``classes`` order."""

    def predict(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        if self.classes is None:
            raise error("invalid_argument", "the model has no classes yet: train it first")
        return self.classes[self.predict_proba(X, params).argmax(axis=1)]

    def score(self, X: Any, y: Any, params: np.ndarray | None = None) -> float:
        """Accuracy; labels outside the model's classes are an error (``invalid_labels``), not a miss."""
        targets = self.targets(y)
        return float(np.mean(self.predict_proba(X, params).argmax(axis=1) == targets))


class CircuitMixin:
    """Circuit plumbing shared by the models: a ``CircuitSpec`` whose input width may be left
    open until the first training data, and the QNG metric of its angles (identity for the
    classical weights after them, which then take plain gradient steps).

    A model whose circuit does not read the data directly (``HybridModel``) overrides
    ``_bind`` and ``circuit_inputs``.
    """

    spec: CircuitSpec
    runtime: Runtime
    n_params: int

    def _init_circuit(self, n_features: int | None, **circuit: Any) -> None:
        self._circuit_args = circuit
        self._declared_features = n_features
        self._bind(n_features)

    @property
    def n_circuit_params(self) -> int:
        return self.spec.n_params

    @property
    def n_features(self) -> int | None:
        return self._declared_features

    def bind_features(self, n_features: int) -> None:
        super().bind_features(n_features)                       # type: ignore[misc]
        if self._declared_features is None:
            self._declared_features = n_features
            self._bind(n_features)

    def _bind(self, n_features: int | None) -> None:
        self.spec = CircuitSpec(**self._circuit_args, n_features=n_features)

    def circuit_inputs(self, X: np.ndarray, params: np.ndarray) -> np.ndarray:
        """What the circuit's encoding reads for scaled features ``X``."""
        return X

    @property
    def parameter_groups(self) -> dict[str, list[int]]:
        """``layer0`` ... ``layer{L-1}`` (each layer's RX·RY·RZ angles), then ``readout`` (the weights after)."""
        per = 3 * self.spec.n_qubits
        groups = {f"layer{k}": list(range(k * per, (k + 1) * per)) for k in range(self.spec.layers)}
        groups["readout"] = list(range(self.spec.n_params, self.n_params))
        return groups

    def circuit_outputs(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The circuit's readout expectations (B, K) for what it reads, ``X``, and its angles."""
        return self.runtime.backend.expectations(self.spec, X, weights)

    def circuit_forward(self, X: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, CircuitPullback]:
        """``circuit_outputs`` and a pullback: cotangent (B, K) -> (d/d angles (P,), d/d X (B, F))
        of sum_bk cotangent[b, k] <Z_k>_b, sharing the forward pass where the backend can."""
        z, pullback = self.runtime.forward(self.spec, X, weights, inputs=True)
        return z, pullback  # type: ignore[return-value]  # inputs=True: d/dX is never None

    def metric_tensor(self, X: np.ndarray, params: np.ndarray, kind: str) -> np.ndarray:
        P = self.spec.n_params
        g = np.eye(self.n_params)
        g[:P, :P] = self.runtime.metric(self.spec, self.circuit_inputs(X, params), params[:P], kind)
        return g


class VQC(CircuitMixin, Classifier):
    """Variational quantum classifier.

    Features are scaled (``minmax`` to [0, 1] by default for angle encoding,
    where feature f drives RY(pi x_f) on qubit f), encoded, sent through
    ``layers`` hardware-efficient layers, and ⟨Z⟩ is read on the readout qubits.
    A trainable scale and bias per readout turn expectations into logits;
    softmax and cross-entropy give the loss. Binary problems read one qubit
    (logits [0, s⟨Z⟩ + b], i.e. a sigmoid); K > 2 classes read K qubits.

    The default readout is the *last* qubits: after a linear CNOT chain qubit
    n-1 holds the parity of all qubits, so it sees every feature even with one layer.

    Args:
        n_qubits, layers, encoding, entanglement, reupload: the circuit (``CircuitSpec``).
        n_classes: number of classes (>= 2).
        n_features: input width; None takes it from the first training data.
        readout: explicit readout qubits (1 for binary, n_classes otherwise).
        scaling: ``minmax`` | ``standard`` | ``none``; default minmax for angle,
            none for amplitude encoding (which normalises each row itself).
    """

    kind = "vqc"

    def __init__(self, n_qubits: int, layers: int, n_classes: int = 2, encoding: str = "angle",
                 entanglement: str = "linear", reupload: bool = False, n_features: int | None = None,
                 readout: tuple[int, ...] | list[int] | None = None, scaling: str | None = None):
        super().__init__(scaling or ("minmax" if encoding == "angle" else "none"), n_classes)
        n_out = 1 if self.n_classes == 2 else self.n_classes
        if readout is None:
            if n_out > n_qubits:
                raise error("invalid_argument",
                            f"{self.n_classes} classes need {n_out} readout qubits, the circuit has "
                            f"{n_qubits}")
            readout = tuple(range(n_qubits - n_out, n_qubits))
        readout = tuple(int(q) for q in readout)
        if len(readout) != n_out:
            raise error("invalid_argument", f"{self.n_classes} classes need {n_out} readout qubits, got {readout}")
        self._init_circuit(n_features, n_qubits=n_qubits, layers=layers, encoding=encoding,
                           entanglement=entanglement, reupload=bool(reupload), readout=readout)
        self.readout = _Readout(n_out)

    @property
    def n_params(self) -> int:
        return self.spec.n_params + 2 * self.readout.n

    def config(self) -> dict[str, Any]:
        a = self._circuit_args
        return {"type": self.kind, "n_qubits": a["n_qubits"], "layers": a["layers"], "n_classes": self.n_classes,
                "encoding": a["encoding"], "entanglement": a["entanglement"], "reupload": a["reupload"],
                "n_features": self.n_features, "readout": list(a["readout"]), "scaling": self.scaler.kind}

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        theta = rng.uniform(-np.pi, np.pi, self.spec.n_params)
        return np.concatenate([theta, np.ones(self.readout.n), np.zeros(self.readout.n)])

    # -- compute ---------------------------------------------------------------------------
    def _logits(self, z: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
        s = z * scale + bias
        if self.n_classes == 2:
            return np.concatenate([np.zeros_like(s), s], axis=1)
        return s

    def evaluate_batch(self, X: np.ndarray, targets: np.ndarray, params: np.ndarray, grad: bool) -> Evaluation:
        P = self.spec.n_params
        theta = params[:P]
        scale, bias = self.readout.split(params, P)
        if grad:
            z, pullback = self.runtime.forward(self.spec, X, theta)              # (B, K)
        else:
            z = self.runtime.backend.expectations(self.spec, X, theta)
        loss, d_logits, probs = cross_entropy(self._logits(z, scale, bias), targets)
        if not grad:
            return Evaluation(loss, None, probs)
        d_s = d_logits[:, 1:] if self.n_classes == 2 else d_logits              # dL/d(scale*z+bias)
        g_theta, _ = pullback(d_s * scale)
        g = np.concatenate([g_theta, (d_s * z).sum(axis=0), d_s.sum(axis=0)])
        return Evaluation(loss, g, probs)

    # -- inference ----------------------------------------------------------------------------
    def predict_proba(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities (B, n_classes), columns in ``classes`` order."""
        p = self._params(params)
        P = self.spec.n_params
        z = self.runtime.backend.expectations(self.spec, self.features(X), p[:P])
        return softmax(self._logits(z, *self.readout.split(p, P)))


class StandardisedTargets:
    """Regression targets: numbers, shifted and scaled by the first training set's statistics."""

    target_mean: float | None
    target_std: float

    def fit_targets(self, summary: DataSummary) -> None:
        if summary.labels.dtype.kind not in "iuf" or summary.label_stats is None:
            raise error("invalid_labels", f"regression targets must be numbers, got {summary.labels.dtype}")
        if self.target_mean is None:
            self.target_mean = float(summary.label_stats.mean[0])
            self.target_std = float(summary.label_stats.std[0]) or 1.0

    def targets(self, y: Any) -> np.ndarray:
        try:
            t = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            raise error("invalid_labels", "regression targets must be numbers") from None
        if t.ndim != 1 or not np.all(np.isfinite(t)):
            raise error("invalid_labels", "regression targets must be a finite 1-D array")
        return (t - (self.target_mean or 0.0)) / self.target_std


class VQCRegressor(CircuitMixin, StandardisedTargets, Model):
    """VQC regression: prediction = mean_y + std_y * (s ⟨Z_r⟩ + b), mean squared error.

    Targets are standardised with the training mean and standard deviation, so
    the circuit's [-1, 1] output and its trainable scale start in range. The loss
    is the MSE of standardised targets; ``score`` is R² on the original scale.
    """

    kind = "vqc_regressor"
    metric_name = "r2"

    def __init__(self, n_qubits: int, layers: int, encoding: str = "angle", entanglement: str = "linear",
                 reupload: bool = False, n_features: int | None = None, readout: int | None = None,
                 scaling: str | None = None):
        super().__init__(scaling or ("minmax" if encoding == "angle" else "none"))
        r = n_qubits - 1 if readout is None else int(readout)
        self._init_circuit(n_features, n_qubits=n_qubits, layers=layers, encoding=encoding,
                           entanglement=entanglement, reupload=bool(reupload), readout=(r,))
        self.target_mean: float | None = None
        self.target_std: float = 1.0

    @property
    def n_params(self) -> int:
        return self.spec.n_params + 2

    def config(self) -> dict[str, Any]:
        a = self._circuit_args
        return {"type": self.kind, "n_qubits": a["n_qubits"], "layers": a["layers"], "encoding": a["encoding"],
                "entanglement": a["entanglement"], "reupload": a["reupload"], "n_features": self.n_features,
                "readout": a["readout"][0], "scaling": self.scaler.kind}

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        return np.concatenate([rng.uniform(-np.pi, np.pi, self.spec.n_params), [1.0, 0.0]])

    def state(self) -> dict[str, Any]:
        return {**super().state(), "target_mean": self.target_mean, "target_std": self.target_std}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.target_mean = state.get("target_mean")
        self.target_std = float(state.get("target_std", 1.0))

    def _standardised(self, X: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        P = self.spec.n_params
        z = self.runtime.backend.expectations(self.spec, X, params[:P])[:, 0]
        return z, params[P] * z + params[P + 1]

    def evaluate_batch(self, X: np.ndarray, targets: np.ndarray, params: np.ndarray, grad: bool) -> Evaluation:
        P = self.spec.n_params
        z, pred = self._standardised(X, params)
        loss, d_pred = mean_squared_error(pred, targets)
        if not grad:
            return Evaluation(loss, None, pred)
        g_theta, _ = self.runtime.vjp(self.spec, X, params[:P], (d_pred * params[P])[:, None])
        return Evaluation(loss, np.concatenate([g_theta, [d_pred @ z, d_pred.sum()]]), pred)

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return r2_score(outputs, targets)   # R² is unchanged by the shared target standardisation

    def predict(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        _, pred = self._standardised(self.features(X), self._params(params))
        return (self.target_mean or 0.0) + self.target_std * pred

    def score(self, X: Any, y: Any, params: np.ndarray | None = None) -> float:
        """R²."""
        return r2_score(self.predict(X, params), np.asarray(y, dtype=np.float64))

