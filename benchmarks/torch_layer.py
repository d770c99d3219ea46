"""One training epoch of a hybrid PyTorch model: qstore.torch.QuantumLayer vs PennyLane's TorchLayer.

The model is ``nn.Sequential(Linear(30, n), quantum layer, Linear(n, 2))`` on scikit-learn's
breast-cancer set (standardised, 70% training split, batches of 32, Adam lr 0.01,
cross-entropy). The quantum layer is the same circuit on both sides: RY(pi x_q) encoding,
``layers`` x (RX·RY·RZ on every qubit, CNOT chain), <Z> on every qubit. Rows:

* qstore QuantumLayer        our statevector simulator, adjoint gradients for weights and inputs
* pennylane default.qubit    qml.qnn.TorchLayer, diff_method="backprop" (torch autograd, broadcast)
* pennylane lightning.qubit  qml.qnn.TorchLayer, diff_method="adjoint"

Before timing, both layers are given the same weights and must return the same outputs
(to 1e-6), so the comparison is of equal work. Each row is the best of ``--repeats`` epochs
after one warm-up batch. PennyLane rows need the ``bench`` extra (pennylane, pennylane-lightning).

Usage: python benchmarks/torch_layer.py [--qubits 8] [--layers 3] [--repeats 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from qstore.torch import QuantumLayer
from qstore.training import VQC


def data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    X_tr, _, y_tr, _ = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    return torch.tensor(StandardScaler().fit_transform(X_tr)), torch.tensor(y_tr)


def pennylane_layer(device: str, method: str, n: int, layers: int, weights: np.ndarray) -> torch.nn.Module:
    import pennylane as qml

    dev = qml.device(device, wires=n)

    @qml.qnode(dev, interface="torch", diff_method=method)
    def circuit(inputs: torch.Tensor, weights: torch.Tensor) -> list:
        for q in range(n):
            qml.RY(np.pi * inputs[..., q], wires=q)
        for layer in range(layers):
            for q in range(n):
                qml.RX(weights[layer, q, 0], wires=q)
                qml.RY(weights[layer, q, 1], wires=q)
                qml.RZ(weights[layer, q, 2], wires=q)
            for q in range(n - 1):
                qml.CNOT(wires=[q, q + 1])
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    layer = qml.qnn.TorchLayer(circuit, {"weights": (layers, n, 3)})
    with torch.no_grad():
        layer.weights.copy_(torch.tensor(weights.reshape(layers, n, 3)))
    return layer


def epoch_seconds(quantum: torch.nn.Module, n: int, X: torch.Tensor, y: torch.Tensor, batch: int,
                  repeats: int) -> tuple[float, float]:
    """Best wall time of one epoch (after a warm-up batch) and the last epoch's mean loss."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], n), quantum, torch.nn.Linear(n, 2)).double()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)

    def step(rows: torch.Tensor) -> float:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(X[rows]), y[rows])
        loss.backward()
        opt.step()
        return float(loss.detach()) * len(rows)

    step(torch.arange(batch))
    best, loss = float("inf"), float("nan")
    for r in range(repeats):
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(r))
        start = time.perf_counter()
        loss = sum(step(rows) for rows in order.split(batch)) / len(X)
        best = min(best, time.perf_counter() - start)
    return best, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qubits", type=int, nargs="+", default=[8])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for every row (default 1: with tiny classical layers, idle "
                             "OpenMP threads spinning beside the simulator's threads cost more than they give)")
    parser.add_argument("--no-pennylane", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    X, y = data()
    have_pl = not args.no_pennylane and importlib.util.find_spec("pennylane") is not None
    print(f"one epoch: {len(X)} samples, batch {args.batch_size}, {args.layers} layers, float64, "
          f"torch threads {args.torch_threads}")
    print("| qubits | layer | s / epoch | ms / batch | final loss | vs qstore |\n|---:|:---|---:|---:|---:|---:|")
    for n in args.qubits:
        weights = np.random.default_rng(1).uniform(-np.pi, np.pi, 3 * n * args.layers)
        ours = QuantumLayer(VQC(n, args.layers, n_classes=n, n_features=n, entanglement="linear"),
                            dtype=torch.float64)
        with torch.no_grad():
            ours.weight.copy_(torch.tensor(weights))
        rows: list[tuple[str, Callable[[], torch.nn.Module]]] = [("qstore QuantumLayer", lambda o=ours: o)]
        if have_pl:
            for label, device, method in (("pennylane default.qubit backprop", "default.qubit", "backprop"),
                                          ("pennylane lightning.qubit adjoint", "lightning.qubit", "adjoint")):
                rows.append((label, lambda d=device, m=method, k=n, w=weights:
                             pennylane_layer(d, m, k, args.layers, w)))
        probe = torch.rand(4, n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        reference = ours(probe).detach().numpy()
        base = None
        n_batches = -(-len(X) // args.batch_size)
        for label, make in rows:
            try:
                layer = make()
                out = layer(probe).detach().numpy()
                if not np.allclose(out, reference, atol=1e-6):
                    raise AssertionError(f"{label} computes a different circuit: max diff "
                                         f"{np.abs(out - reference).max():.2e}")
                seconds, loss = epoch_seconds(layer, n, X, y, args.batch_size, args.repeats)
            except Exception as exc:   # a plugin missing or broken in this environment
                print(f"  {label}: {type(exc).__name__}: {exc}, skipped", file=sys.stderr)
                continue
            base = base or seconds
            print(f"| {n} | {label} | {seconds:.3f} | {1000 * seconds / n_batches:.2f} | {loss:.4f} | "
                  f"{seconds / base:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
