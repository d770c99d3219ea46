"""``CircuitModel``: a user's parameterised ``cirq.Circuit`` as a trainable model.

The circuit binds two kinds of sympy symbols: *inputs* (one per feature, set from each
scaled sample) and *weights* (trained). A symbol may drive several gates and appear in
scaled expressions (``cirq.rx(2 * w0 + 0.5)``). The model reads the expectations of
Pauli-sum ``observables``; a trainable scale and bias per observable turn them into
logits (``n_classes`` set: softmax and cross-entropy, as ``VQC``) or a prediction
(``n_classes=None``: regression on standardised targets, as ``VQCRegressor``).

How it runs (``model.path``, logged when the model is built):

- ``adjoint``: ``qstore.circuits.CompiledCircuit``, the cirq circuit's gates on the compiled
  state-vector kernels, with exact adjoint gradients with respect to weights and inputs (a
  training step is one forward pass and one backward pass that reuses its gates). Every
  parameterised gate must be (or decompose into) ``cirq.EigenGate``s with a symbolic exponent.
- ``cirq``: otherwise, ``cirq.Simulator`` with central finite differences (step 1e-5)
  for the gradients: any unitary circuit, slower, and accurate to about 1e-9.

The ``Trainer``'s ``backend`` and ``gradient`` settings do not apply to this model: ``path`` decides.

``config()`` holds the circuit and the observables as cirq JSON, so checkpoints, resume,
``load_model`` and server ``train`` jobs rebuild the model; a JSON text that is not a
circuit is refused.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import cirq
import numpy as np
import sympy

from qstore.circuits.compiled_circuit import CompiledCircuit
from qstore.circuits.observables import PauliTerms, pauli_terms
from qstore.errors import QStoreError, error

from .data import DataSummary
from .losses import cross_entropy, mean_squared_error, r2_score, softmax
from .models import CircuitPullback, Classifier, Evaluation, StandardisedTargets

log = logging.getLogger(__name__)

FINITE_DIFF_STEP = 1e-5
PATHS = ("auto", "adjoint", "cirq")


def _circuit(circuit: Any) -> cirq.Circuit:
    if isinstance(circuit, str):
        try:
            circuit = cirq.read_json(json_text=circuit)
        except Exception as exc:   # cirq raises ValueError, KeyError, TypeError... on foreign JSON
            raise error("invalid_argument", f"circuit is not cirq JSON: {exc}") from None
    if isinstance(circuit, cirq.FrozenCircuit):
        circuit = circuit.unfreeze()
    if not isinstance(circuit, cirq.Circuit):
        raise error("invalid_argument", f"circuit must be a cirq.Circuit, got {type(circuit).__name__}")
    if circuit.has_measurements():
        raise error("invalid_argument", "remove the circuit's measurements: the model reads exact expectations")
    return circuit


def _symbols(values: Sequence[Any], what: str) -> list[sympy.Symbol]:
    if isinstance(values, (str, sympy.Symbol)):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise error("invalid_argument", f"{what} must be a list of sympy Symbols or names, got {values!r}")
    out = []
    for v in values:
        if isinstance(v, str) and v:
            v = sympy.Symbol(v)
        if not isinstance(v, sympy.Symbol):
            raise error("invalid_argument", f"{what} must be sympy Symbols or names, got {v!r}")
        out.append(v)
    return out


def _observable(o: Any) -> cirq.PauliSum:
    if isinstance(o, str):
        try:
            o = cirq.read_json(json_text=o)
        except Exception as exc:
            raise error("invalid_argument", f"observable is not cirq JSON: {exc}") from None
    try:
        ps = cirq.PauliSum.wrap(o)
    except (TypeError, ValueError):
        raise error("invalid_argument", f"observables must be Pauli sums or strings, got {o!r}") from None
    if not isinstance(ps, cirq.PauliSum) or any(abs(complex(t.coefficient).imag) > 1e-12 for t in ps):
        raise error("invalid_argument", f"observable {o!r} must be a Hermitian Pauli sum (real coefficients)")
    return ps


class CircuitModel(Classifier):
    """A parameterised ``cirq.Circuit`` trained by the ``Trainer``.

    Args:
        circuit: a ``cirq.Circuit`` (or its cirq JSON) without measurements.
        inputs: the symbols the scaled features bind, in feature order.
        weights: the trainable symbols; ``params[:len(weights)]`` in this order.
        observables: Pauli sums read after the circuit (``cirq.Z(q)``, ``0.5 * cirq.X(a) * cirq.X(b)``...).
            Classification reads one per class, or one for two classes; regression reads one.
        n_classes: number of classes; None for regression (score R²).
        scaling: feature scaling before binding: ``minmax`` (to [0, 1]; default) | ``standard`` | ``none``.
        path: ``auto`` (adjoint when the gates allow it, else cirq) | ``adjoint`` | ``cirq``.
        groups: named groups of weights for fine-tuning, e.g. ``{"layer0": [w0, w1]}``; weights in no
            group form the group ``weights``, and the readout scales and biases the group ``readout``.
    """

    kind = "circuit"
    runs_on_backend = False

    def __init__(self, circuit: Any, inputs: Sequence[Any], weights: Sequence[Any], observables: Sequence[Any],
                 n_classes: int | None = None, scaling: str = "minmax", path: str = "auto",
                 groups: dict[str, Sequence[Any]] | None = None):
        if n_classes is None:
            super(Classifier, self).__init__(scaling)           # regression: the Model base only
            self.n_classes = None                               # type: ignore[assignment]
            self.classes = None
            self.metric_name = "r2"                             # type: ignore[misc]
        else:
            super().__init__(scaling, n_classes)
        self.circuit = _circuit(circuit)
        self.inputs = _symbols(inputs, "inputs")
        self.weights = _symbols(weights, "weights")
        names = [s.name for s in self.inputs + self.weights]
        if len(set(names)) != len(names):
            raise error("invalid_argument", f"inputs and weights must be distinct symbols, got {names}")
        unbound = set(cirq.parameter_names(self.circuit)) - set(names)
        if unbound:
            raise error("invalid_parameters", f"the circuit's symbols {sorted(unbound)} are neither inputs nor weights")
        self.groups = self._groups(groups or {})
        if isinstance(observables, (str, cirq.PauliSum, cirq.PauliString, cirq.Operation)):
            observables = [observables]
        if not isinstance(observables, (list, tuple)):
            raise error("invalid_argument", f"observables must be a list of Pauli sums, got {observables!r}")
        self.observables = [_observable(o) for o in observables]
        if not self.observables:
            raise error("invalid_argument", "give at least one observable")
        K = len(self.observables)
        if n_classes is None and K != 1:
            raise error("invalid_argument", f"regression reads one observable, got {K}")
        if n_classes is not None and K != (1 if self.n_classes == 2 else self.n_classes):
            raise error("invalid_argument", f"{self.n_classes} classes read "
                                            f"{1 if self.n_classes == 2 else self.n_classes} observables, got {K}")
        self.n_out = K
        observed = {q for o in self.observables for q in o.qubits}
        self.qubits = sorted(self.circuit.all_qubits() | observed)
        self.target_mean: float | None = None
        self.target_std = 1.0
        if path not in PATHS:
            raise error("invalid_argument", f"path must be one of {PATHS}, got {path!r}")
        self._requested_path = path
        self.path, self._compiled = self._compile(path)
        self._terms: list[PauliTerms] = [pauli_terms(o, len(self.qubits), self.qubits) for o in self.observables]

    def _groups(self, groups: dict[str, Sequence[Any]]) -> dict[str, list[str]]:
        if not isinstance(groups, dict):
            raise error("invalid_argument", f"groups must map names to weight symbols, got {groups!r}")
        weights = [w.name for w in self.weights]
        out: dict[str, list[str]] = {}
        for name, members in groups.items():
            names = [m.name for m in _symbols(members, f"groups[{name!r}]")]
            if name in ("weights", "readout") or not isinstance(name, str) or any(n not in weights for n in names):
                raise error("invalid_argument", f"group {name!r} must be a new name over the weights {weights}")
            out[name] = names
        grouped = [n for names in out.values() for n in names]
        if len(grouped) != len(set(grouped)):
            raise error("invalid_argument", "a weight may belong to one group only")
        return out

    def _compile(self, path: str) -> tuple[str, CompiledCircuit | None]:
        if path == "cirq":
            return "cirq", None
        try:
            compiled = CompiledCircuit(self.circuit, self.inputs + self.weights, self.qubits)
        except QStoreError as exc:
            if path == "adjoint":
                raise
            log.info("CircuitModel runs on cirq with finite differences: %s", exc)
            return "cirq", None
        log.info("CircuitModel runs on the statevector path with adjoint gradients")
        return "adjoint", compiled

    # -- description ------------------------------------------------------------------------
    @property
    def n_params(self) -> int:
        return len(self.weights) + 2 * self.n_out

    @property
    def n_circuit_params(self) -> int:
        return len(self.weights)

    @property
    def n_features(self) -> int:
        return len(self.inputs)

    @property
    def parameter_groups(self) -> dict[str, list[int]]:
        index = {w.name: i for i, w in enumerate(self.weights)}
        groups = {name: [index[n] for n in names] for name, names in self.groups.items()}
        grouped = {i for rows in groups.values() for i in rows}
        rest = [i for i in range(len(self.weights)) if i not in grouped]
        if rest:
            groups["weights"] = rest
        groups["readout"] = list(range(len(self.weights), self.n_params))
        return groups

    def config(self) -> dict[str, Any]:
        return {"type": self.kind, "circuit": cirq.to_json(self.circuit, indent=None),
                "inputs": [s.name for s in self.inputs], "weights": [s.name for s in self.weights],
                "observables": [cirq.to_json(o, indent=None) for o in self.observables],
                "n_classes": self.n_classes, "scaling": self.scaler.kind, "path": self._requested_path,
                "groups": self.groups}

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        w = rng.uniform(-np.pi, np.pi, len(self.weights))
        return np.concatenate([w, np.ones(self.n_out), np.zeros(self.n_out)])

    # -- circuit ------------------------------------------------------------------------------
    def _values(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return np.hstack([X, np.broadcast_to(np.asarray(weights, dtype=np.float64), (len(X), len(self.weights)))])

    def _cirq_expectations(self, values: np.ndarray) -> np.ndarray:
        sim = cirq.Simulator(dtype=np.complex128)
        names = [s.name for s in self.inputs + self.weights]
        out = np.empty((len(values), self.n_out))
        for b, row in enumerate(values):
            psi = sim.simulate(self.circuit, dict(zip(names, row.tolist())),
                               qubit_order=self.qubits).final_state_vector[None, :]
            out[b] = [np.vdot(psi[0], t.apply(psi)[0]).real for t in self._terms]
        return out

    def circuit_outputs(self, X: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Expectations (B, n_observables) for (scaled) inputs X (B, n_inputs) and weights."""
        values = self._values(X, weights)
        if self._compiled is None:
            return self._cirq_expectations(values)
        z, _ = self._compiled.forward(values, self._terms)
        return z

    def circuit_forward(self, X: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, CircuitPullback]:
        """``circuit_outputs`` and a pullback: cotangent (B, K) -> (d/d weights (W,), d/d inputs
        (B, n_inputs)) of sum_bk cotangent[b, k] <O_k>_b. On the adjoint path the pullback is one
        backward pass through the gates of this forward pass."""
        values = self._values(X, weights)
        F = len(self.inputs)

        def split(grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return grad[:, F:].sum(axis=0), grad[:, :F]

        if self._compiled is not None:
            z, pullback = self._compiled.forward(values, self._terms)
            return z, lambda cotangent: split(pullback(cotangent))
        z = self._cirq_expectations(values)

        def finite_differences(cotangent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            g = np.asarray(cotangent, dtype=np.float64).reshape(len(values), self.n_out)
            grad = np.empty_like(values)
            for k in range(values.shape[1]):
                plus, minus = values.copy(), values.copy()
                plus[:, k] += FINITE_DIFF_STEP
                minus[:, k] -= FINITE_DIFF_STEP
                diff = self._cirq_expectations(plus) - self._cirq_expectations(minus)
                grad[:, k] = (g * diff).sum(axis=1) / (2 * FINITE_DIFF_STEP)
            return split(grad)

        return z, finite_differences

    # -- targets --------------------------------------------------------------------------------
    def fit_targets(self, summary: DataSummary) -> None:
        if self.n_classes is not None:
            super().fit_targets(summary)
        else:
            StandardisedTargets.fit_targets(self, summary)

    def targets(self, y: Any) -> np.ndarray:
        if self.n_classes is not None:
            return super().targets(y)
        return StandardisedTargets.targets(self, y)

    def state(self) -> dict[str, Any]:
        if self.n_classes is not None:
            return super().state()
        return {"scaler": self.scaler.to_dict(), "target_mean": self.target_mean, "target_std": self.target_std}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.target_mean = state.get("target_mean")
        self.target_std = float(state.get("target_std", 1.0))

    # -- compute -----------------------------------------------------------------------------------
    def _head(self, z: np.ndarray, params: np.ndarray) -> np.ndarray:
        W = len(self.weights)
        s = z * params[W:W + self.n_out] + params[W + self.n_out:]
        if self.n_classes == 2:
            return np.concatenate([np.zeros_like(s), s], axis=1)
        return s

    def evaluate_batch(self, X: np.ndarray, targets: np.ndarray, params: np.ndarray, grad: bool) -> Evaluation:
        W, K = len(self.weights), self.n_out
        if grad:
            z, pullback = self.circuit_forward(X, params[:W])
        else:
            z = self.circuit_outputs(X, params[:W])
        head = self._head(z, params)
        if self.n_classes is None:
            pred = head[:, 0]
            loss, d_pred = mean_squared_error(pred, targets)
            d_s, outputs = d_pred[:, None], pred
        else:
            loss, d_logits, outputs = cross_entropy(head, targets)
            d_s = d_logits[:, 1:] if self.n_classes == 2 else d_logits
        if not grad:
            return Evaluation(loss, None, outputs)
        g_w, _ = pullback(d_s * params[W:W + K])
        return Evaluation(loss, np.concatenate([g_w, (d_s * z).sum(axis=0), d_s.sum(axis=0)]), outputs)

    def metric_tensor(self, X: np.ndarray, params: np.ndarray, kind: str) -> np.ndarray:
        raise error("invalid_argument", "QNG is not available for a CircuitModel: use adam, sgd or tunneling")

    def quality(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        if self.n_classes is None:
            return r2_score(outputs, targets)
        return super().quality(outputs, targets)

    # -- inference ------------------------------------------------------------------------------------
    def predict_proba(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        if self.n_classes is None:
            raise error("invalid_argument", "a regression model has no class probabilities")
        p = self._params(params)
        return softmax(self._head(self.circuit_outputs(self.features(X), p[:len(self.weights)]), p))

    def predict(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        if self.n_classes is not None:
            return super().predict(X, params)
        p = self._params(params)
        pred = self._head(self.circuit_outputs(self.features(X), p[:len(self.weights)]), p)[:, 0]
        return (self.target_mean or 0.0) + self.target_std * pred

    def score(self, X: Any, y: Any, params: np.ndarray | None = None) -> float:
        if self.n_classes is not None:
            return super().score(X, y, params)
        return r2_score(self.predict(X, params), np.asarray(y, dtype=np.float64))
