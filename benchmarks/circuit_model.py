"""Training throughput of a CircuitModel against the VQC running the same circuit.

The circuit is the iris classifier written from scratch in cirq: RY(pi x) encoding of the 4
features, ``--layers`` x (RX·RY·RZ on every qubit, CNOT ring), <Z> on qubits 1-3 (3 classes). The
``VQC(4, layers, n_classes=3, entanglement="circular")`` builds the same circuit in our own
format. Both train on iris (70% split, batches of 16, Adam lr 0.05, the same seed) with the same
``Trainer``; epochs alternate between the two models, so both see the same machine load. The table
shows each model's median samples/s over the epochs (the trainer's own figure: reading batches,
forward, adjoint backward, optimizer step), the ratio of the medians per round, and the test
accuracy after the last epoch.

Usage: python benchmarks/circuit_model.py [--epochs 10] [--layers 3]
"""
from __future__ import annotations

import argparse
import asyncio
import tempfile

import cirq
import numpy as np
import sympy
from tqdm import tqdm

import qstore
from qstore.training import VQC, CircuitModel, Trainer
from qstore.training.reference_datasets import load_reference


def iris_circuit(layers: int) -> CircuitModel:
    qs = cirq.LineQubit.range(4)
    xs = sympy.symbols("x0:4")
    ws = sympy.symbols(f"w0:{layers * 12}")
    c = cirq.Circuit(cirq.ry(np.pi * xs[i]).on(qs[i]) for i in range(4))
    for layer in range(layers):
        for i in range(4):
            k = (layer * 4 + i) * 3
            c.append([cirq.rx(ws[k]).on(qs[i]), cirq.ry(ws[k + 1]).on(qs[i]), cirq.rz(ws[k + 2]).on(qs[i])])
        c.append(cirq.CNOT(qs[i], qs[(i + 1) % 4]) for i in range(4))
    return CircuitModel(c, inputs=list(xs), weights=list(ws), observables=[cirq.Z(q) for q in qs[1:]], n_classes=3)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--layers", type=int, default=3)
    args = parser.parse_args()
    data = load_reference("iris", 4)
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    with tempfile.TemporaryDirectory() as path:
        async with await qstore.Database.open(path, sync=False) as db:
            await db.import_dataset("iris", data.X_train, data.y_train)
            vqc = VQC(4, args.layers, n_classes=3, entanglement="circular")
            trainers = {name: Trainer(db, model, lr=0.05, batch_size=16, seed=0)
                        for name, model in (("VQC (statevector kernels)", vqc),
                                            ("CircuitModel (cirq circuit)", iris_circuit(args.layers)))}
            for _ in tqdm(range(args.epochs), desc="epochs", leave=False):
                for trainer in trainers.values():
                    await trainer.fit("iris", epochs=1)
            rates = {name: np.array(t.history["samples_per_s"]) for name, t in trainers.items()}
            base = rates["VQC (statevector kernels)"]
            print(f"iris, {len(data.X_train)} training rows, {args.layers} layers, {args.epochs} epochs each, "
                  f"interleaved; load average {load}")
            print("| model | samples/s (median) | VQC / model (median of rounds) | test accuracy |\n"
                  "|:---|---:|---:|---:|")
            for name, trainer in trainers.items():
                accuracy = await trainer.evaluate(data.X_test, data.y_test)
                print(f"| {name} | {np.median(rates[name]):.0f} | {np.median(base / rates[name]):.1f}x | "
                      f"{accuracy:.3f} |")


if __name__ == "__main__":
    asyncio.run(main())
