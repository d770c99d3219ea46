"""Hardware conditions: density-matrix speed, error mitigation, noisy training, the quantum autoencoder.

Tables:

1. speed: our batched density-matrix simulator against ``cirq.DensityMatrixSimulator`` (complex128,
   the same ``NoiseModel`` through ``to_cirq()``) on the classifier circuit (angle encoding, 3 layers,
   linear CNOTs) under ``ionq_aria``, per circuit, at 4, 6 and 8 qubits; max |difference| of <Z>.
2. mitigation: |error| of <Z_q> (mean over qubits) against the exact value on random circuits under
   ``ionq_aria``, raw and with readout correction, ZNE (Richardson, linear) and both; then the same for
   the energy of a 4-qubit transverse-field Ising VQE (at its optimum and at random parameters).
3. deployment (arms D and R): a model trained on the exact simulator, scored on the noisy device with 1,000
   shots, raw and with the mitigation chosen on validation rows (``--dataset iris``, ``breast-cancer``, or
   ``diabetes`` for a regression), under ``ionq_aria`` and a stated NISQ 2% noise, seeds 0-4.
4. training (arm T): iris trained and scored on the noisy device with shots, raw and ZNE linear + readout.
5. autoencoder: test AUROC of anomaly_score (settings chosen on validation rows only) beside PCA
   reconstruction error (same latent size, and k chosen on validation) and IsolationForest, seeds 0-4;
   ``autoencoder-selection`` runs the validation grid that chose the settings.

The protocols are in benchmarks/README.md ("Noise").

Usage: python benchmarks/noise.py [--only speed mitigation deployment training autoencoder
       autoencoder-selection] [--dataset iris] [--seeds 5]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

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


#: protocol of the noisy-training tables (benchmarks/README.md, "Training under noise"), fixed before the runs
SHOTS = 1000
NOISE_LEVELS: dict[str, Any] = {
    "ionq_aria": "ionq_aria",
    "NISQ 2%": NoiseModel(depolarizing_1q=0.002, depolarizing_2q=0.025, damping_1q=0.002, damping_2q=0.01,
                          readout_01=0.02, readout_10=0.05)}
#: mitigation candidates, cheapest first (validation ties go to the first)
CANDIDATES: dict[str, dict[str, Any]] = {"readout": {"zne": None, "readout": True},
                                         "ZNE linear + readout": {"zne": "linear", "readout": True},
                                         "ZNE Richardson + readout": {"zne": "richardson", "readout": True}}


#: arm R (regression): model, lr, batch size, epochs; the classifiers use their ``RECIPES``
DIABETES = ({"type": "vqc_regressor", "n_qubits": 4, "layers": 3}, 0.05, 16, 40)

Split = tuple[np.ndarray, np.ndarray]


def splits(dataset: str, seed: int) -> tuple[Split, Split, Split]:
    """(fit, validation, test) rows for one seed: 70/30 train/test (the recipe's, for the classifiers), then
    80/20 fit/validation; diabetes is standardised and reduced to 4 PCA components fitted on the fit rows."""
    from sklearn.model_selection import train_test_split

    from qstore.training.reference_datasets import RECIPES, load_reference

    if dataset == "diabetes":
        from sklearn.datasets import load_diabetes
        from sklearn.decomposition import PCA
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        X, y = load_diabetes(return_X_y=True)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, random_state=seed)
        X_fit, X_val, y_fit, y_val = train_test_split(X_tr, y_tr, test_size=0.2, random_state=seed)
        reduce = make_pipeline(StandardScaler(), PCA(4, random_state=seed)).fit(X_fit)
        return (reduce.transform(X_fit), y_fit), (reduce.transform(X_val), y_val), (reduce.transform(X_te), y_te)
    data = load_reference(dataset, RECIPES[dataset].components, seed=seed)
    X_fit, X_val, y_fit, y_val = train_test_split(data.X_train, data.y_train, test_size=0.2, random_state=seed,
                                                  stratify=data.y_train)
    return (X_fit, y_fit), (X_val, y_val), (data.X_test, data.y_test)


def recipe(dataset: str) -> tuple[dict[str, Any], float, int, int]:
    """(model config, lr, batch size, epochs) of the deployment tables."""
    from qstore.training.reference_datasets import RECIPES

    if dataset == "diabetes":
        return DIABETES
    r = RECIPES[dataset]
    return r.model, r.lr, r.batch_size, r.epochs


async def deployment_trial(dataset: str, seed: int, noise: Any, shots: int = SHOTS) -> dict[str, tuple[float, float]]:
    """Arms D and R: train on the exact simulator, score on the noisy device. {mitigation: (validation, test
    score)} for "exact" (noiseless), "raw", every candidate, and "chosen" (the candidate best on validation);
    the score is accuracy, or R² for a regression."""
    from qstore.training import Trainer, model_from_config
    from qstore.training.models import Runtime

    config, lr, batch_size, epochs = recipe(dataset)
    fit, val, test = splits(dataset, seed)
    trainer = Trainer(None, model_from_config(config), lr=lr, batch_size=batch_size, seed=seed)
    await trainer.fit(fit, epochs=epochs)
    model = trainer.model
    out: dict[str, tuple[float, float]] = {"exact": (model.score(*val), model.score(*test))}
    for name, mitigation in {"raw": None, **CANDIDATES}.items():
        model.runtime = Runtime(get_backend("density_matrix", noise=noise, shots=shots, seed=seed,
                                            mitigation=mitigation), "parameter-shift")
        out[name] = (model.score(*val), model.score(*test))
    out["chosen"] = out[max(CANDIDATES, key=lambda name: out[name][0])]   # max keeps the first of ties
    return out


async def noisy_training_trial(seed: int, noise: Any, mitigation: dict[str, Any] | None,
                               shots: int = SHOTS) -> float:
    """Arm T: train and score on the noisy device with shots (parameter-shift); test accuracy."""
    from qstore.training import Trainer, model_from_config

    config, lr, batch_size, epochs = recipe("iris")
    fit, _, test = splits("iris", seed)
    trainer = Trainer(None, model_from_config(config), lr=lr, batch_size=batch_size, seed=seed,
                      backend="density_matrix", backend_options={"noise": noise, "mitigation": mitigation},
                      gradient="parameter-shift", shots=shots)
    await trainer.fit(fit, epochs=epochs)
    return await trainer.evaluate(*test)


async def deployment(seeds: int, dataset: str) -> None:
    print(f"\n## train in simulation, run on the device ({dataset}, {SHOTS} shots; test "
          f"{'R²' if dataset == 'diabetes' else 'accuracy'}, mitigation chosen on validation)\n")
    for label, noise in NOISE_LEVELS.items():
        print(f"\n### {label}\n")
        print("| seed | noiseless | raw | " + " | ".join(CANDIDATES) + " | chosen on validation |")
        print("|---:|---:|---:|" + "---:|" * (len(CANDIDATES) + 1))
        rows = []
        for seed in range(seeds):
            trial = await deployment_trial(dataset, seed, noise)
            chosen = next(n for n in CANDIDATES if trial[n] == trial["chosen"])
            rows.append([trial[n][1] for n in ("exact", "raw", *CANDIDATES, "chosen")])
            print(f"| {seed} | " + " | ".join(f"{a:.3f}" for a in rows[-1][:-1]) +
                  f" | {rows[-1][-1]:.3f} ({chosen}) |", flush=True)
        mean = np.mean(rows, axis=0)
        print("| **mean** | " + " | ".join(f"**{a:.3f}**" for a in mean) + " |")


async def training(seeds: int) -> None:
    noise = NOISE_LEVELS["NISQ 2%"]
    mitigation = CANDIDATES["ZNE linear + readout"]
    print(f"\n## train and test on the device (iris, NISQ 2%, {SHOTS} shots, parameter-shift; test accuracy)\n")
    print("| seed | raw | ZNE linear + readout |\n|---:|---:|---:|")
    rows = []
    for seed in range(seeds):
        rows.append([await noisy_training_trial(seed, noise, m) for m in (None, mitigation)])
        print(f"| {seed} | {rows[-1][0]:.3f} | {rows[-1][1]:.3f} |", flush=True)
    mean = np.mean(rows, axis=0)
    print(f"| **mean** | **{mean[0]:.3f}** | **{mean[1]:.3f}** |")


def _auroc(anomalous: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(anomalous, scores))


async def _autoencoder_run(config: dict[str, Any], lr: float, seed: int, Z_fit: np.ndarray, Z_eval: np.ndarray,
                           anomalous: np.ndarray, epochs: list[int]) -> list[float]:
    """AUROC on (Z_eval, anomalous) after each of ``epochs`` (increasing) of one training run."""
    from qstore.training import Trainer, model_from_config

    ae = model_from_config(config)
    trainer = Trainer(None, ae, lr=lr, batch_size=16, seed=seed)
    out, done = [], 0
    for e in epochs:
        await trainer.fit((Z_fit, np.zeros(len(Z_fit))), epochs=e - done)
        done = e
        out.append(_auroc(anomalous, ae.anomaly_score(Z_eval)))              # type: ignore[attr-defined]
    return out


async def autoencoder_selection(selection_seeds: tuple[int, ...] = (100, 101)) -> None:
    """The grid of the autoencoder protocol, scored on validation rows only; prints the best settings."""
    from qstore.training.reference_datasets import ANOMALY_DATASETS, load_anomaly

    epochs = [10, 20, 40, 80]
    shapes = {"angle": (8, 4), "amplitude": (3, 2)}
    for dataset in ANOMALY_DATASETS:
        data = load_anomaly(dataset)
        results = []
        for encoding, (n, latent) in shapes.items():
            for layers in (1, 2, 3, 4):
                for entanglement in ("linear", "circular"):
                    for lr in (0.05, 0.1, 0.2):
                        config = {"type": "quantum_autoencoder", "n_qubits": n, "latent_qubits": latent,
                                  "layers": layers, "encoding": encoding, "entanglement": entanglement}
                        runs = [await _autoencoder_run(config, lr, s, data.Z_fit, data.Z_val, data.val_anomalous,
                                                       epochs) for s in selection_seeds]
                        for e, auroc in zip(epochs, np.mean(runs, axis=0)):
                            results.append((float(auroc), encoding, layers, entanglement, lr, e))
        results.sort(key=lambda r: -r[0])
        print(f"\n## autoencoder selection on {dataset}: validation AUROC (mean of seeds {selection_seeds}), "
              f"best 8 of {len(results)}\n")
        print("| validation AUROC | encoding | layers | entanglement | lr | epochs |\n|---:|---|---:|---|---:|---:|")
        for r in results[:8]:
            print(f"| {r[0]:.4f} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |", flush=True)


async def autoencoder(seeds: int) -> None:
    from sklearn.ensemble import IsolationForest

    from qstore.training.reference_datasets import ANOMALY_RECIPES, load_anomaly, pca_anomaly_auroc

    for dataset, recipe in ANOMALY_RECIPES.items():
        data = load_anomaly(dataset)
        latent = 2 ** recipe.model["latent_qubits"] if recipe.model["encoding"] == "amplitude" else \
            recipe.model["latent_qubits"]
        k_val = max(range(1, 8), key=lambda k: pca_anomaly_auroc(data.Z_fit, data.Z_val, data.val_anomalous, k))
        pca = pca_anomaly_auroc(data.Z_fit, data.Z_test, data.test_anomalous, latent)
        pca_val = pca_anomaly_auroc(data.Z_fit, data.Z_test, data.test_anomalous, k_val)
        print(f"\n## quantum autoencoder on {dataset} ({recipe.normal} normal): test AUROC\n\nsetting: "
              f"{recipe.model}, lr {recipe.lr}, {recipe.epochs} epochs\n")
        print(f"| seed | quantum autoencoder | PCA({latent}) | PCA({k_val}, k chosen on validation) | "
              "IsolationForest |\n|---:|---:|---:|---:|---:|")
        rows = []
        for seed in range(seeds):
            (quantum,) = await _autoencoder_run(recipe.model, recipe.lr, seed, data.Z_fit, data.Z_test,
                                                data.test_anomalous, [recipe.epochs])
            iso = IsolationForest(random_state=seed).fit(data.Z_fit)
            rows.append([quantum, pca, pca_val, _auroc(data.test_anomalous, -iso.score_samples(data.Z_test))])
            print(f"| {seed} | " + " | ".join(f"{a:.3f}" for a in rows[-1]) + " |", flush=True)
        mean = np.mean(rows, axis=0)
        print("| **mean** | " + " | ".join(f"**{a:.3f}**" for a in mean) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=["speed", "mitigation", "deployment", "training", "autoencoder"],
                        help="tables: speed mitigation deployment training autoencoder autoencoder-selection")
    parser.add_argument("--qubits", nargs="*", type=int, default=[4, 6, 8])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--circuits", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dataset", default="iris", help="deployment table: iris, breast-cancer, diabetes, ...")
    args = parser.parse_args()
    if "speed" in args.only:
        speed(args.qubits, args.batch)
    if "mitigation" in args.only:
        mitigation_tables(args.circuits)
    if "deployment" in args.only:
        asyncio.run(deployment(args.seeds, args.dataset))
    if "training" in args.only:
        asyncio.run(training(args.seeds))
    if "autoencoder-selection" in args.only:
        asyncio.run(autoencoder_selection())
    if "autoencoder" in args.only:
        asyncio.run(autoencoder(args.seeds))


if __name__ == "__main__":
    main()
