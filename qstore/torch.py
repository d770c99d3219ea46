"""PyTorch: a Q-Store model's circuit as a ``torch.nn.Module`` (``pip install qstore[torch]``).

    from qstore.torch import QuantumLayer
    net = torch.nn.Sequential(torch.nn.Linear(30, 4), QuantumLayer(VQC(4, 2, n_classes=4)), torch.nn.Linear(4, 2))

``QuantumLayer(model)`` maps inputs (batch, features) to the circuit's readout expectations
(batch, outputs): ⟨Z⟩ on the readout qubits of a ``VQC``, the observables of a
``CircuitModel``. The circuit's weights (``model.params[:model.n_circuit_params]``) are one
``nn.Parameter``; the model's classical readout is left to the torch layers around it. The
backward pass is one adjoint pass of our simulator, giving the gradients for the weights and
the inputs together (``torch.autograd.Function``). CPU tensors, float32 or float64; the
simulation itself always runs in float64.

With small classical layers, ``torch.set_num_threads(1)`` is much faster on a small machine:
torch's idle OpenMP threads spin while the simulator's threads work (8x per epoch on 2 cores).

Only this module imports torch: the engine imports and trains without it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised by the no-torch import test
    raise ImportError("qstore.torch needs PyTorch: pip install 'qstore[torch]'") from exc

from qstore.errors import error
from qstore.training.hybrid import HybridModel
from qstore.training.models import Model


def _numpy(t: torch.Tensor) -> np.ndarray:
    if not t.is_cpu:
        raise error("invalid_argument", f"QuantumLayer runs on CPU tensors, got a tensor on {t.device}")
    a: np.ndarray = t.detach().numpy()
    return a if a.dtype == np.float64 else a.astype(np.float64)     # no copy for float64


def _tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    t = torch.from_numpy(a)
    return t if dtype == torch.float64 else t.to(dtype)


class CircuitFunction(torch.autograd.Function):
    """(x (B, F), weights (W,)) -> expectations (B, K); backward is the pullback of the forward
    pass (the simulator's saved states), so a training step simulates the circuit once each way."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weights: torch.Tensor, model: Model) -> torch.Tensor:
        z, ctx.pullback = model.circuit_forward(_numpy(x), _numpy(weights))  # type: ignore[attr-defined]
        ctx.dtypes = x.dtype, weights.dtype
        return _tensor(z, x.dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        g_w, g_x = ctx.pullback(_numpy(grad_out))
        return (_tensor(g_x, ctx.dtypes[0]) if ctx.needs_input_grad[0] else None,
                _tensor(g_w, ctx.dtypes[1]) if ctx.needs_input_grad[1] else None, None)


class QuantumLayer(torch.nn.Module):
    """A model's circuit as a layer; its weights are the ``weight`` parameter.

    Args:
        model: a ``VQC``, ``VQCRegressor`` or ``CircuitModel`` (a ``HybridModel``'s classical layers
            belong in torch: wrap a ``VQC`` instead). Its input width must be known (``n_features``).
        seed: draws the initial weights uniformly in [-pi, pi) when the model has no trained params;
            trained params (e.g. from ``load_model``) are taken as they are.
        dtype: of the weight parameter (default: torch's default dtype).
    """

    def __init__(self, model: Model, seed: int = 0, dtype: torch.dtype | None = None):
        super().__init__()
        if isinstance(model, HybridModel) or not hasattr(model, "circuit_forward"):
            raise error("invalid_argument", f"a {type(model).__name__} has no circuit to wrap in a QuantumLayer")
        if model.n_features is None:
            raise error("invalid_argument", "give the model its input width (n_features=...) before wrapping it")
        self.model = model
        W = model.n_circuit_params
        if model.params is not None:
            init = np.asarray(model.params[:W], dtype=np.float64)
        else:
            init = np.random.default_rng(seed).uniform(-np.pi, np.pi, W)
        self.weight = torch.nn.Parameter(torch.tensor(init, dtype=dtype or torch.get_default_dtype()))
        self.in_features = int(model.n_features)
        self.out_features = int(model.circuit_outputs(np.zeros((1, self.in_features)), init).shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise error("invalid_features", f"QuantumLayer takes (batch, {self.in_features}), got {tuple(x.shape)}")
        if torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad):
            out: torch.Tensor = CircuitFunction.apply(x, self.weight, self.model)
            return out
        return _tensor(self.model.circuit_outputs(_numpy(x), _numpy(self.weight)), x.dtype)  # type: ignore[attr-defined]

    def extra_repr(self) -> str:
        return f"{type(self.model).__name__}, in_features={self.in_features}, out_features={self.out_features}"
