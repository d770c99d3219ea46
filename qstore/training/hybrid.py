"""HybridModel: small NumPy dense layers before and after a quantum layer, trained end to end.

features -> [Dense + tanh]* -> Dense (one angle per qubit) -> circuit -> ⟨Z_q⟩ on every
qubit -> [Dense + tanh]* -> Dense -> logits -> softmax cross-entropy.

Backpropagation crosses the circuit with the backend's vector-Jacobian product
with ``inputs=True``: the adjoint method returns the gradient with respect to
the circuit's input angles in the same backward pass as the parameter gradient.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from qstore.circuits.spec import CircuitSpec
from qstore.errors import error

from .losses import cross_entropy, softmax
from .models import CircuitMixin, Classifier, Evaluation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dense:
    """y = x W + b, with W (n_in, n_out) and b stored row-major at ``offset`` in the flat params."""

    n_in: int
    n_out: int
    offset: int

    @property
    def size(self) -> int:
        return self.n_in * self.n_out + self.n_out

    def unpack(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w_end = self.offset + self.n_in * self.n_out
        return params[self.offset:w_end].reshape(self.n_in, self.n_out), params[w_end:self.offset + self.size]

    def init(self, rng: np.random.Generator) -> np.ndarray:
        limit = np.sqrt(6.0 / (self.n_in + self.n_out))             # Glorot: keeps tanh out of saturation
        return np.concatenate([rng.uniform(-limit, limit, self.n_in * self.n_out), np.zeros(self.n_out)])

    def forward(self, x: np.ndarray, params: np.ndarray) -> np.ndarray:
        w, b = self.unpack(params)
        return x @ w + b

    def backward(self, x: np.ndarray, d_out: np.ndarray, params: np.ndarray, grad: np.ndarray) -> np.ndarray:
        """Write dW, db into ``grad`` and return d/dx."""
        w, _ = self.unpack(params)
        w_end = self.offset + self.n_in * self.n_out
        grad[self.offset:w_end] = (x.T @ d_out).ravel()
        grad[w_end:self.offset + self.size] = d_out.sum(axis=0)
        return d_out @ w.T


class _Stack:
    """Dense layers with tanh between them (none after the last)."""

    def __init__(self, sizes: list[int], offset: int):
        self.layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            self.layers.append(Dense(n_in, n_out, offset))
            offset += self.layers[-1].size
        self.end = offset

    def forward(self, x: np.ndarray, params: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Output and the input of every layer (kept for backward)."""
        inputs = []
        for i, layer in enumerate(self.layers):
            inputs.append(x)
            x = layer.forward(x, params)
            if i < len(self.layers) - 1:
                x = np.tanh(x)
        return x, inputs

    def backward(self, inputs: list[np.ndarray], d_out: np.ndarray, params: np.ndarray,
                 grad: np.ndarray) -> np.ndarray:
        d = d_out
        for i in range(len(self.layers) - 1, -1, -1):
            if i < len(self.layers) - 1:
                d = d * (1.0 - inputs[i + 1] ** 2)                 # tanh' from the stored activation
            d = self.layers[i].backward(inputs[i], d, params, grad)
        return d


class HybridModel(CircuitMixin, Classifier):
    """Classical pre-network, a VQC circuit reading ⟨Z⟩ on every qubit, classical head.

    Args:
        n_qubits, layers, entanglement, reupload: the circuit (angle encoding).
        n_classes: number of classes (>= 2).
        hidden: widths of the tanh layers before the circuit; a final linear
            layer then gives one encoding angle per qubit.
        head: widths of the tanh layers after the circuit, before the logits.
        n_features: input width; None takes it from the first training data.
        scaling: feature scaling before the first layer (default ``standard``).
    """

    kind = "hybrid"

    def __init__(self, n_qubits: int, layers: int, n_classes: int = 2, hidden: tuple[int, ...] | list[int] = (8,),
                 head: tuple[int, ...] | list[int] = (), entanglement: str = "linear", reupload: bool = False,
                 n_features: int | None = None, scaling: str = "standard"):
        super().__init__(scaling, n_classes)
        if any(int(h) < 1 for h in (*hidden, *head)):
            raise error("invalid_argument", "hidden and head widths must be positive")
        self.hidden = [int(h) for h in hidden]
        self.head = [int(h) for h in head]
        # The circuit reads every qubit; its input width is fixed at n_qubits whatever the data width.
        self.spec = CircuitSpec(n_qubits, layers, "angle", entanglement, bool(reupload), n_qubits,
                                tuple(range(n_qubits)))
        self.n_out = 1 if self.n_classes == 2 else self.n_classes
        self._init_circuit(n_features, n_qubits=n_qubits, layers=layers, entanglement=entanglement,
                           reupload=bool(reupload))

    def _bind(self, n_features: int | None) -> None:
        """The dense stacks around the circuit, sized for ``n_features`` inputs."""
        P = self.spec.n_params
        self.pre = _Stack([n_features or 0, *self.hidden, self.spec.n_qubits], P)
        self.post = _Stack([self.spec.n_qubits, *self.head, self.n_out], self.pre.end)

    @property
    def n_params(self) -> int:
        return self.post.end

    def config(self) -> dict[str, Any]:
        a = self._circuit_args
        return {"type": self.kind, "n_qubits": a["n_qubits"], "layers": a["layers"], "n_classes": self.n_classes,
                "hidden": self.hidden, "head": self.head, "entanglement": a["entanglement"],
                "reupload": a["reupload"], "n_features": self.n_features, "scaling": self.scaler.kind}

    def init_params(self, rng: np.random.Generator) -> np.ndarray:
        if self.n_features is None:
            raise error("invalid_argument", "bind the input width (train on data) before initialising")
        theta = rng.uniform(-np.pi, np.pi, self.spec.n_params)
        return np.concatenate([theta, *(layer.init(rng) for layer in self.pre.layers + self.post.layers)])

    # -- compute ----------------------------------------------------------------------
    def _logits(self, out: np.ndarray) -> np.ndarray:
        return np.concatenate([np.zeros_like(out), out], axis=1) if self.n_classes == 2 else out

    def _forward(self, X: np.ndarray, params: np.ndarray):
        theta = params[:self.spec.n_params]
        u, pre_inputs = self.pre.forward(X, params)
        z = self.runtime.backend.expectations(self.spec, u, theta)
        out, post_inputs = self.post.forward(z, params)
        return theta, u, pre_inputs, z, post_inputs, out

    def evaluate_batch(self, X: np.ndarray, targets: np.ndarray, params: np.ndarray, grad: bool) -> Evaluation:
        theta, u, pre_inputs, z, post_inputs, out = self._forward(X, params)
        loss, d_logits, probs = cross_entropy(self._logits(out), targets)
        if not grad:
            return Evaluation(loss, None, probs)
        g = np.zeros(self.n_params)
        d_out = d_logits[:, 1:] if self.n_classes == 2 else d_logits
        d_z = self.post.backward(post_inputs, d_out, params, g)
        g_theta, d_u = self.runtime.vjp(self.spec, u, theta, d_z, inputs=True)
        g[:self.spec.n_params] = g_theta
        self.pre.backward(pre_inputs, d_u, params, g)
        return Evaluation(loss, g, probs)

    @property
    def parameter_groups(self) -> dict[str, list[int]]:
        """``encoder`` (the classical pre-network), ``layer0`` ... (circuit), ``readout`` (the classical head)."""
        groups = {"encoder": list(range(self.spec.n_params, self.pre.end))}
        groups.update({k: v for k, v in super().parameter_groups.items() if k != "readout"})
        groups["readout"] = list(range(self.pre.end, self.post.end))
        return groups

    def circuit_inputs(self, X: np.ndarray, params: np.ndarray) -> np.ndarray:
        return self.pre.forward(X, params)[0]

    def predict_proba(self, X: Any, params: np.ndarray | None = None) -> np.ndarray:
        *_, out = self._forward(self.features(X), self._params(params))
        return softmax(self._logits(out))
