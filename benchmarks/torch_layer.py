"""One training epoch of a hybrid PyTorch model: qstore.torch.QuantumLayer vs PennyLane's TorchLayer.

The model is ``nn.Sequential(Linear(30, n), quantum layer, Linear(n, 2))`` on scikit-learn's
breast-cancer set (standardised, 70% training split, batches of 32, Adam lr 0.01,
cross-entropy). The quantum layer is the same circuit on both sides: RY(pi x_q) encoding,
``layers`` x (RX·RY·RZ on every qubit, CNOT chain), <Z> on every qubit. Rows:

* qstore QuantumLayer          our statevector simulator; the backward pass reuses the forward
                               pass's states (adjoint gradients for weights and inputs)
* pennylane TorchLayer ...     ``qml.qnn.TorchLayer`` as PennyLane's docs use it, on
                               ``default.qubit`` with diff_method "best" (its default), "backprop"
                               and "adjoint", and on ``lightning.qubit`` with "best" and "adjoint"

Before timing, every layer is given the same weights and must return our outputs to 1e-6, and
every network starts from the same classical weights, so the comparison is of equal work (the
final-loss column agrees). Each row trains its own network for ``--repeats`` epochs over the same
shuffles, the rows interleaved round by round (robust to the machine's load changing); in each
round a row trains ``--warm`` untimed epochs and then the timed one, as epochs follow each other
in a real training loop (timed right after another row's epoch, a 15 ms epoch starts with caches
the 0.8 s one has emptied: ~3 ms more). The ratio is the median over rounds of (row epoch /
qstore epoch in the same round). PennyLane rows need the
``bench`` extra (pennylane, pennylane-lightning).

Usage: python benchmarks/torch_layer.py [--qubits 8] [--layers 3] [--repeats 5] [--pennylane default.qubit:best ...]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

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

    # TorchLayer makes its weights in torch's default float32: make them float64 before copying ours
    # in, so both networks start from the same quantum weights, not ones rounded to float32
    layer = qml.qnn.TorchLayer(circuit, {"weights": (layers, n, 3)}).double()
    with torch.no_grad():
        layer.weights.copy_(torch.tensor(weights.reshape(layers, n, 3)))
    return layer


PENNYLANE_ROWS = ("default.qubit:best", "default.qubit:backprop", "default.qubit:adjoint", "lightning.qubit:best",
                  "lightning.qubit:adjoint")


class Row:
    """One layer under test: its own network and optimizer, trained epoch by epoch."""

    def __init__(self, label: str, quantum: torch.nn.Module, n: int, X: torch.Tensor, y: torch.Tensor, batch: int):
        torch.manual_seed(0)
        self.label, self.X, self.y, self.batch = label, X, y, batch
        self.net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], n), quantum, torch.nn.Linear(n, 2)).double()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=0.01)
        self.times: list[float] = []
        self.loss = float("nan")
        self.step(torch.arange(batch))          # warm-up: compile, allocate

    def step(self, rows: torch.Tensor) -> float:
        self.opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(self.net(self.X[rows]), self.y[rows])
        loss.backward()
        self.opt.step()
        return float(loss.detach()) * len(rows)

    def epoch(self, order: torch.Tensor, timed: bool = True) -> None:
        start = time.perf_counter()
        self.loss = sum(self.step(rows) for rows in order.split(self.batch)) / len(self.X)
        if timed:
            self.times.append(time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qubits", type=int, nargs="+", default=[8])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warm", type=int, default=1, help="untimed epochs before each timed one (default 1)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch intra-op threads for every row (default 1: with tiny classical layers, idle "
                             "OpenMP threads spinning beside the simulator's threads cost more than they give)")
    parser.add_argument("--pennylane", nargs="*", default=list(PENNYLANE_ROWS), metavar="DEVICE:METHOD",
                        help="PennyLane rows (none: ours only); default: " + " ".join(PENNYLANE_ROWS))
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    X, y = data()
    have_pl = importlib.util.find_spec("pennylane") is not None
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    print(f"one epoch: {len(X)} samples, batch {args.batch_size}, {args.layers} layers, float64, "
          f"torch threads {args.torch_threads}; {args.repeats} rounds, rows interleaved, {args.warm} untimed "
          f"epoch(s) before each timed one; load average {load}")
    print("| qubits | layer | median s / epoch | ms / batch | final loss | vs qstore (median of rounds) |\n"
          "|---:|:---|---:|---:|---:|---:|")
    n_batches = -(-len(X) // args.batch_size)
    for n in args.qubits:
        weights = np.random.default_rng(1).uniform(-np.pi, np.pi, 3 * n * args.layers)
        ours = QuantumLayer(VQC(n, args.layers, n_classes=n, n_features=n, entanglement="linear"),
                            dtype=torch.float64)
        with torch.no_grad():
            ours.weight.copy_(torch.tensor(weights))
        makers: list[tuple[str, Callable[[], torch.nn.Module]]] = [("qstore QuantumLayer (adjoint)", lambda o=ours: o)]
        if have_pl:
            for device, method in (row.split(":") for row in args.pennylane):
                makers.append((f"pennylane TorchLayer {device} {method}", lambda d=device, m=method, k=n, w=weights:
                               pennylane_layer(d, m, k, args.layers, w)))
        probe = torch.rand(4, n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
        reference = ours(probe).detach().numpy()
        rows = []
        for label, make in makers:
            try:
                layer = make()
                out = layer(probe).detach().numpy()
                if not np.allclose(out, reference, atol=1e-6):
                    raise AssertionError(f"{label} computes a different circuit: max diff "
                                         f"{np.abs(out - reference).max():.2e}")
                rows.append(Row(label, layer, n, X, y, args.batch_size))
            except Exception as exc:   # a plugin missing or broken in this environment
                print(f"  {label}: {type(exc).__name__}: {exc}, skipped", file=sys.stderr)
        for r in tqdm(range(args.repeats), desc=f"{n} qubits", leave=False):
            order = torch.randperm(len(X), generator=torch.Generator().manual_seed(r))
            for row in rows:
                for _ in range(args.warm):
                    row.epoch(order, timed=False)
                row.epoch(order)
        base = np.array(rows[0].times)
        for row in rows:
            seconds = float(np.median(row.times))
            ratio = float(np.median(np.array(row.times) / base))
            print(f"| {n} | {row.label} | {seconds:.3f} | {1000 * seconds / n_batches:.2f} | {row.loss:.4f} | "
                  f"{ratio:.1f}x |", flush=True)


if __name__ == "__main__":
    main()
