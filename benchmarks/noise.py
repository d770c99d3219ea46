"""Hardware conditions: density-matrix speed, error mitigation, noisy training, the quantum autoencoder.

Tables:

1. speed: our batched density-matrix simulator against ``cirq.DensityMatrixSimulator`` (complex128,
   the same ``NoiseModel`` through ``to_cirq()``) on the classifier circuit (angle encoding, 3 layers,
   linear CNOTs) under ``ionq_aria``, per circuit, at 4, 6 and 8 qubits; max |difference| of <Z>.
2. mitigation: |error| of <Z_q> (mean over qubits) against the exact value on random circuits under
   ``ionq_aria``, raw and with readout correction, ZNE (Richardson, linear) and both; then the same for
   the energy of a 4-qubit transverse-field Ising VQE (at its optimum and at random parameters).
3. training: test accuracy of a VQC trained and tested on a noisy backend, with and without
   mitigation, over 5 seeds.
4. autoencoder: AUROC of anomaly_score (trained on the normal class only) beside PCA reconstruction
   error (same latent size, and 2) and IsolationForest, over 5 seeds.

Usage: python benchmarks/noise.py [--only speed mitigation training autoencoder] [--seeds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import cirq
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qstore.circuits import CircuitSpec, get_backend  # noqa: E402
from qstore.circuits.noise import PRESETS, NoiseModel, apply_readout  # noqa: E402

MITIGATIONS = {"raw": None, "readout": {"zne": None, "readout": True},
               "zne richardson": {"zne": "richardson", "readout": False},
               "zne linear": {"zne": "linear", "readout": False},
               "zne richardson + readout": {"zne": "richardson", "readout": True},
               "zne linear + readout": {"zne": "linear", "readout": True}}


def speed(qubits: list[int], batch: int) -> None:
    print(f"\n## density-matrix speed (ionq_aria, 3 layers, batch {batch}; ms per circuit)\n")
    print("| qubits | qstore density_matrix | cirq DensityMatrixSimulator | ratio | max abs diff |")
    print("|---:|---:|---:|---:|---:|")
    noise = PRESETS["ionq_aria"]
    for n in qubits:
        spec = CircuitSpec(n_qubits=n, layers=3)
        rng = np.random.default_rng(n)
        X, theta = rng.random((batch, n)), rng.uniform(-np.pi, np.pi, spec.n_params)
        ours = get_backend("density_matrix", noise=noise)
        ours.expectations(spec, X[:2], theta)                       # compile once
        start = time.perf_counter()
        z_ours = ours.expectations(spec, X, theta)
        t_ours = (time.perf_counter() - start) / batch
        simulator = cirq.DensityMatrixSimulator(noise=noise.to_cirq(), dtype=np.complex128)
        circuit, _, _ = spec.to_cirq()
        angles = spec.encode(X)
        rows = max(2, min(batch, 16 if n < 8 else 4))

        def reference(b: int, simulator: cirq.DensityMatrixSimulator = simulator, circuit: cirq.Circuit = circuit,
                      spec: CircuitSpec = spec, angles: np.ndarray = angles, theta: np.ndarray = theta) -> np.ndarray:
            rho = simulator.simulate(circuit, spec.resolver(angles[b], theta), qubit_order=spec.qubits)
            return apply_readout(np.real(np.diag(rho.final_density_matrix))[None], noise.readout)[0]

        reference(0)
        start = time.perf_counter()
        probs = np.stack([reference(b) for b in range(rows)])
        t_ref = (time.perf_counter() - start) / rows
        z_ref = spec.observables.from_probabilities(probs)
        diff = float(np.abs(z_ours[:rows] - z_ref).max())
        print(f"| {n} | {t_ours * 1e3:.2f} | {t_ref * 1e3:.2f} | **{t_ref / t_ours:.1f}x** | {diff:.1e} |")


def mitigation_tables(n_circuits: int) -> None:
    rng = np.random.default_rng(7)
    exact = get_backend("statevector")
    backends = {name: get_backend("density_matrix", noise="ionq_aria", mitigation=m)
                for name, m in MITIGATIONS.items()}
    print("\n## mitigation under ionq_aria: random 4-qubit circuits, mean |<Z_q> error|\n")
    print("| circuit | layers | " + " | ".join(backends) + " |")
    print("|---:|---:|" + "---:|" * len(backends))
    totals = np.zeros(len(backends))
    for k in range(n_circuits):
        layers = int(rng.integers(2, 6))
        spec = CircuitSpec(n_qubits=4, layers=layers, entanglement="circular")
        X, theta = rng.random((1, 4)), rng.uniform(-np.pi, np.pi, spec.n_params)
        truth = exact.expectations(spec, X, theta)
        errs = np.array([np.abs(b.expectations(spec, X, theta) - truth).mean() for b in backends.values()])
        totals += errs
        print(f"| {k} | {layers} | " + " | ".join(f"{e:.5f}" for e in errs) + " |")
    mean = totals / n_circuits
    print("| **mean** | | " + " | ".join(f"**{e:.5f}**" for e in mean) + " |")
    print("| **reduction** | | " + " | ".join(f"{mean[0] / e:.1f}x" for e in mean) + " |")

    q = cirq.LineQubit.range(4)
    hamiltonian = sum((cirq.Z(q[i]) * cirq.Z(q[i + 1]) for i in range(3)), cirq.PauliSum()) + \
        sum((0.7 * cirq.X(qi) for qi in q), cirq.PauliSum())
    from qstore.vqe import minimize

    spec = CircuitSpec(n_qubits=4, layers=2)
    vqe = minimize(spec, hamiltonian, np.random.default_rng(3).uniform(-0.3, 0.3, spec.n_params), steps=80, lr=0.1)
    circuit, theta_symbols, input_symbols = spec.to_cirq()
    bare = cirq.resolve_parameters(circuit, {s: 0.0 for s in input_symbols})
    print("\n## mitigation under ionq_aria: 4-qubit TFIM VQE energy, |error|\n")
    print("| parameters | exact energy | " + " | ".join(backends) + " |")
    print("|---|---:|" + "---:|" * len(backends))
    for label, params in (("VQE optimum", vqe.params), ("random", rng.uniform(-np.pi, np.pi, spec.n_params))):
        resolver = dict(zip(theta_symbols, params))
        truth = get_backend("density_matrix").energy(bare, hamiltonian, resolver, q)
        errs = [abs(b.energy(bare, hamiltonian, resolver, q) - truth) for b in backends.values()]
        print(f"| {label} | {truth:.4f} | " + " | ".join(f"{e:.5f}" for e in errs) + " |")


async def training(seeds: int, dataset: str) -> None:
    from qstore.training import Trainer, model_from_config
    from qstore.training.reference_datasets import RECIPES, load_reference

    recipe = RECIPES[dataset]
    data = load_reference(dataset, recipe.components)
    noise = NoiseModel(depolarizing_1q=0.01, depolarizing_2q=0.05, damping_1q=0.02, damping_2q=0.04,
                       readout_01=0.03, readout_10=0.08)
    print(f"\n## training under noise ({dataset}: {recipe.model}, {recipe.epochs} epochs, parameter-shift; "
          f"test accuracy on the same noisy backend)\n\nnoise: {noise}\n")
    print("| seed | exact | noisy | noisy + ZNE (linear) + readout | noisy + readout |")
    print("|---:|---:|---:|---:|---:|")
    rows = []
    for seed in range(seeds):
        accuracy = []
        for options in (None, {"noise": noise}, {"noise": noise, "mitigation": {"zne": "linear"}},
                        {"noise": noise, "mitigation": {"zne": None}}):
            backend = "statevector" if options is None else "density_matrix"
            trainer = Trainer(None, model_from_config(recipe.model), lr=recipe.lr, batch_size=recipe.batch_size,
                              seed=seed, backend=backend, backend_options=options,
                              gradient="adjoint" if options is None else "parameter-shift")
            await trainer.fit((data.X_train, data.y_train), epochs=recipe.epochs)
            accuracy.append(await trainer.evaluate(data.X_test, data.y_test))
        rows.append(accuracy)
        print(f"| {seed} | " + " | ".join(f"{a:.3f}" for a in accuracy) + " |", flush=True)
    mean = np.mean(rows, axis=0)
    print("| **mean** | " + " | ".join(f"**{a:.3f}**" for a in mean) + " |")


async def autoencoder(seeds: int) -> None:
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score

    from qstore.training import Trainer, model_from_config
    from qstore.training.reference_datasets import ANOMALY_RECIPES, load_anomaly, pca_anomaly_auroc

    print(f"\n## quantum autoencoder: AUROC, trained on the normal class only (8 PCA features, 8 qubits, "
          f"4 latent; mean ± sd over {seeds} seeds)\n")
    print("| dataset (normal class) | quantum autoencoder | PCA(4) | PCA(2) | PCA(1) | IsolationForest |")
    print("|---|---:|---:|---:|---:|---:|")
    for dataset, recipe in ANOMALY_RECIPES.items():
        Z_train, Z_test, anomalous = load_anomaly(dataset)
        quantum, forest = [], []
        for seed in range(seeds):
            ae = model_from_config(recipe.model)
            await Trainer(None, ae, lr=recipe.lr, batch_size=recipe.batch_size, seed=seed).fit(
                (Z_train, np.zeros(len(Z_train))), epochs=recipe.epochs)
            quantum.append(roc_auc_score(anomalous, ae.anomaly_score(Z_test)))         # type: ignore[attr-defined]
            iso = IsolationForest(random_state=seed).fit(Z_train)
            forest.append(roc_auc_score(anomalous, -iso.score_samples(Z_test)))
        pca = [pca_anomaly_auroc(Z_train, Z_test, anomalous, k) for k in (4, 2, 1)]
        print(f"| {dataset} ({recipe.normal}) | **{np.mean(quantum):.3f} ± {np.std(quantum):.3f}** | "
              + " | ".join(f"{p:.3f}" for p in pca) + f" | {np.mean(forest):.3f} ± {np.std(forest):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["speed", "mitigation", "training", "autoencoder"])
    parser.add_argument("--qubits", nargs="*", type=int, default=[4, 6, 8])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--circuits", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dataset", default="moons", help="reference dataset of the noisy training table")
    args = parser.parse_args()
    if "speed" in args.only:
        speed(args.qubits, args.batch)
    if "mitigation" in args.only:
        mitigation_tables(args.circuits)
    if "training" in args.only:
        asyncio.run(training(args.seeds, args.dataset))
    if "autoencoder" in args.only:
        asyncio.run(autoencoder(args.seeds))


if __name__ == "__main__":
    main()
