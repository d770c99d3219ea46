"""qstore.torch.QuantumLayer: autograd through our adjoint gradients, dtypes, nn.Sequential training."""
from __future__ import annotations

import subprocess
import sys

import cirq
import numpy as np
import pytest
import sympy

torch = pytest.importorskip("torch")

from qstore.torch import CircuitFunction, QuantumLayer  # noqa: E402
from qstore.training import VQC, CircuitModel  # noqa: E402

x0, x1, w0, w1, w2 = sympy.symbols("x0 x1 w0 w1 w2")
q = cirq.LineQubit.range(3)


def circuit_model() -> CircuitModel:
    circuit = cirq.Circuit(
        cirq.ry(np.pi * x0).on(q[0]), cirq.ry(np.pi * x1).on(q[1]), cirq.rx(2 * w0 + 0.3).on(q[0]),
        cirq.rz(w0).on(q[1]), cirq.ry(-0.5 * w2).on(q[2]), cirq.CNOT(q[0], q[1]), cirq.CNOT(q[1], q[2]),
        cirq.rx(w1 * x1).on(q[2]), cirq.ry(w0 - w2).on(q[0]), cirq.XX(q[1], q[2]) ** (w1 / np.pi))
    return CircuitModel(
        circuit, inputs=[x0, x1], weights=[w0, w1, w2],
        observables=[cirq.Z(q[0]) * cirq.Z(q[1]), cirq.X(q[2]) + 0.5 * cirq.Y(q[1]), cirq.Z(q[2])], n_classes=3)


@pytest.mark.parametrize("make", [lambda: VQC(3, 2, n_classes=3, n_features=3), circuit_model], ids=["vqc", "circuit"])
def test_gradcheck_in_float64_for_inputs_and_weights(make) -> None:
    layer = QuantumLayer(make(), seed=1, dtype=torch.float64)
    x = torch.rand(5, layer.in_features, dtype=torch.float64, generator=torch.Generator().manual_seed(0),
                   requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: CircuitFunction.apply(a, w, layer.model), (x, layer.weight),
                                    eps=1e-6, atol=1e-6, rtol=1e-5)


def test_float32_layer_matches_float64() -> None:
    model = VQC(4, 2, n_classes=4, n_features=4)
    l32, l64 = QuantumLayer(model, seed=2), QuantumLayer(model, seed=2, dtype=torch.float64)
    assert l32.weight.dtype == torch.float32
    x64 = torch.rand(6, 4, dtype=torch.float64, requires_grad=True)
    x32 = x64.detach().float().requires_grad_()
    (l32(x32) ** 2).sum().backward()
    (l64(x64) ** 2).sum().backward()
    assert l32(x32).dtype == torch.float32 and x32.grad.dtype == torch.float32
    np.testing.assert_allclose(x32.grad.numpy(), x64.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(l32.weight.grad.numpy(), l64.weight.grad.numpy(), atol=1e-4)


def test_bad_inputs_are_refused() -> None:
    layer = QuantumLayer(VQC(3, 1, n_classes=3, n_features=3))
    with pytest.raises(Exception) as exc:
        layer(torch.rand(2, 4))
    assert getattr(exc.value, "code", None) == "invalid_features"
    with pytest.raises(Exception) as exc:
        QuantumLayer(VQC(3, 1, n_classes=3))
    assert getattr(exc.value, "code", None) == "invalid_argument"


def test_the_engine_imports_and_trains_without_torch() -> None:
    code = ("import sys; sys.modules['torch'] = None\n"
            "import numpy as np, qstore, qstore.training as t\n"
            "m = t.VQC(2, 1, n_features=2); tr = t.Trainer(None, m, seed=0)\n"
            "import asyncio; asyncio.run(tr.fit((np.random.rand(20, 2), np.arange(20) % 2), epochs=1))\n"
            "try:\n    import qstore.torch\nexcept ImportError as e:\n    print('refused:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "qstore[torch]" in out.stdout


def hybrid_breast_cancer(epochs: int, seed: int = 0) -> float:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    X_tr, X_te = (torch.tensor(scaler.transform(a), dtype=torch.float32) for a in (X_tr, X_te))
    y_tr = torch.tensor(y_tr)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(30, 4), QuantumLayer(VQC(4, 2, n_classes=4, n_features=4), seed=seed),
                              torch.nn.Linear(4, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    schedule = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.85)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for rows in torch.randperm(len(X_tr), generator=gen).split(32):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(X_tr[rows]), y_tr[rows])
            loss.backward()
            opt.step()
        schedule.step()
    with torch.no_grad():
        return float((net(X_te).argmax(1).numpy() == y_te).mean())


@pytest.mark.parametrize("seed", [0, 1])
def test_hybrid_sequential_with_adam_on_breast_cancer(seed: int) -> None:
    accuracy = hybrid_breast_cancer(epochs=15, seed=seed)
    assert accuracy >= 0.93, accuracy
