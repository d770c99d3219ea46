"""Gradient throughput of the hardware-efficient classifier circuit.

Times one full gradient of sum(grad_out * <Z_q>) with respect to all parameters
(and, for Q-Store's adjoint, the inputs too) and reports microseconds per
sample. Rows:

* qstore adjoint          StatevectorBackend.vjp (numba kernels, threads over batch chunks)
* qstore param-shift      parameter-shift transform executed on the statevector backend
* cirq param-shift        the same transform on cirq.Simulator (a few samples only)
* pennylane backprop      default.qubit, parameter broadcasting, autograd backprop
* lightning adjoint       lightning.qubit, diff_method="adjoint"

PennyLane rows appear when ``pennylane`` (and ``pennylane-lightning``) import.
A second table compares one fused rotation layer in NumPy with the numba kernel
(the "before/after" for the compiled kernels).

Usage: python benchmarks/gradients.py [--qubits 8 12] [--batches 1 64 256] ...
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import resource
import sys
import time
from collections.abc import Callable

import numpy as np

from qstore import runtime
from qstore.circuits import CircuitSpec, CirqBackend, StatevectorBackend, vjp
from qstore.circuits import statevector_kernels as kernels
from qstore.circuits.ansatz import fused_rotations


def best_time(fn: Callable[[], object], repeats: int, budget_s: float) -> float:
    """Best wall time of ``repeats`` runs (fewer if one run exceeds the budget)."""
    fn()
    best = float("inf")
    spent = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best, spent = min(best, elapsed), spent + elapsed
        if spent > budget_s:
            break
    return best


PENNYLANE_METHODS = [("pennylane default.qubit backprop (broadcast)", "default.qubit", "backprop"),
                     ("pennylane lightning.qubit adjoint", "lightning.qubit", "adjoint")]


def pennylane_available() -> bool:
    return importlib.util.find_spec("pennylane") is not None


def _pennylane_time(device: str, method: str, n: int, layers: int, X: np.ndarray, theta: np.ndarray,
                    grad_out: np.ndarray, repeats: int, budget_s: float, memory_gib: float) -> float:
    """Seconds per gradient of one PennyLane configuration (runs in a child process)."""
    import pennylane as qml
    from pennylane import numpy as pnp

    # Cap the address space: broadcast backprop on 12 qubits can ask for more memory than the machine has.
    vm_kib = int(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmSize")))
    limit = vm_kib * 1024 + int(memory_gib * 2 ** 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    def circuit(x, t):
        for q in range(n):
            qml.RY(np.pi * x[..., q], wires=q)
        t = t.reshape(layers, n, 3)
        for layer in range(layers):
            for q in range(n):
                qml.RX(t[layer, q, 0], wires=q)
                qml.RY(t[layer, q, 1], wires=q)
                qml.RZ(t[layer, q, 2], wires=q)
            for q in range(n - 1):
                qml.CNOT(wires=[q, q + 1])
        return [qml.expval(qml.PauliZ(q)) for q in range(n)]

    # A batch of one goes in unbroadcast: PennyLane 0.45 mis-shapes size-1 broadcasts on 12 wires.
    x = pnp.array(X if X.shape[0] > 1 else X[0], requires_grad=False)
    g = grad_out.T if X.shape[0] > 1 else grad_out[0]
    t0 = pnp.array(theta, requires_grad=True)
    qnode = qml.QNode(circuit, qml.device(device, wires=n), diff_method=method, interface="autograd")
    grad = qml.grad(lambda t: pnp.sum(pnp.stack(qnode(x, t)) * g))
    return best_time(lambda: grad(t0), repeats, budget_s)


def pennylane_rows(n: int, layers: int, X: np.ndarray, theta: np.ndarray, grad_out: np.ndarray,
                   args: argparse.Namespace) -> dict[str, float]:
    """Per-sample seconds for each PennyLane method, each in a fresh, memory-capped process."""
    rows = {}
    ctx = multiprocessing.get_context("spawn")
    for label, device, method in PENNYLANE_METHODS:
        with ctx.Pool(1) as pool:
            job = pool.apply_async(_pennylane_time, (device, method, n, layers, X, theta, grad_out,
                                                     args.pl_repeats, args.budget, args.pl_memory_gib))
            try:
                rows[label] = job.get(timeout=args.pl_timeout) / X.shape[0]
            except MemoryError:
                print(f"  {label}, {n} qubits, batch {X.shape[0]}: over {args.pl_memory_gib} GiB, skipped",
                      file=sys.stderr)
            except multiprocessing.TimeoutError:
                print(f"  {label}, {n} qubits, batch {X.shape[0]}: over {args.pl_timeout} s, skipped",
                      file=sys.stderr)
            except Exception as exc:  # a plugin missing or broken in this environment
                print(f"  {label}: {type(exc).__name__}: {exc}, skipped", file=sys.stderr)
    return rows


def gradient_table(args: argparse.Namespace) -> list[tuple[int, int, str, float]]:
    rng = np.random.default_rng(0)
    if args.threads:
        runtime.configure(compute_threads=args.threads)
    sv = StatevectorBackend()
    results = []
    for n in args.qubits:
        spec = CircuitSpec(n, args.layers, entanglement="linear")
        X_all = rng.uniform(size=(max(args.batches), n))
        theta = rng.uniform(-np.pi, np.pi, size=spec.n_params)
        g_all = rng.normal(size=(max(args.batches), n))
        few = min(args.cirq_samples, X_all.shape[0])
        cirq_time = best_time(lambda spec=spec, X_all=X_all, few=few, theta=theta, g_all=g_all:
                              vjp(CirqBackend(), spec, X_all[:few], theta, g_all[:few], method="parameter-shift"),
                              1, 0) / few
        for B in args.batches:
            X, g = X_all[:B], g_all[:B]
            rows = {
                "qstore adjoint (statevector)":
                    best_time(lambda spec=spec, X=X, theta=theta, g=g: sv.vjp(spec, X, theta, g),
                              args.repeats, args.budget) / B,
                "qstore parameter-shift (statevector)":
                    best_time(lambda spec=spec, X=X, theta=theta, g=g:
                              vjp(sv, spec, X, theta, g, method="parameter-shift"),
                              args.repeats, args.budget) / B,
                f"cirq.Simulator parameter-shift ({few} samples)": cirq_time,
            }
            if not args.no_pennylane and pennylane_available():
                rows.update(pennylane_rows(n, args.layers, X, theta, g, args))
            for label, seconds in rows.items():
                results.append((n, B, label, seconds * 1e6))
    return results


def numpy_layer(psi: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """Reference: the same fused layer as NumPy tensor contractions on a (B, 2, ..., 2) tensor."""
    n = psi.ndim - 1
    for q in range(n):
        psi = np.moveaxis(np.einsum("bij,bj...->bi...", mats[:, q], np.moveaxis(psi, q + 1, 1)), 1, q + 1)
    return psi


def kernel_table(args: argparse.Namespace) -> list[tuple[int, int, str, float]]:
    rng = np.random.default_rng(1)
    results = []
    B = max(args.batches)
    for n in args.qubits:
        theta = rng.uniform(size=(1, 3 * n))
        mats = fused_rotations(theta, n, 1)[0]                        # (n, 1, 2, 2)
        psi = (rng.normal(size=(B,) + (2,) * n) + 1j * rng.normal(size=(B,) + (2,) * n)).astype(np.complex128)
        per_sample = np.broadcast_to(mats.transpose(1, 0, 2, 3), (B, n, 2, 2))
        t_np = best_time(lambda psi=psi, per_sample=per_sample: numpy_layer(psi, per_sample), args.repeats, args.budget)
        chunk = min(64, B)
        st = np.ascontiguousarray(np.stack([psi.real, psi.imag]).reshape(2, B, -1)[:, :chunk].transpose(0, 2, 1))
        kmats = np.ascontiguousarray(np.stack([mats.real, mats.imag]).transpose(0, 1, 3, 4, 2))
        t_nb = best_time(lambda st=st, kmats=kmats: kernels.apply_layer(st, kmats), args.repeats * 10, args.budget)
        results.append((n, B, "rotation layer, NumPy einsum", t_np / B * 1e6))
        results.append((n, B, "rotation layer, numba kernel (1 thread)", t_nb / chunk * 1e6))
    return results


def print_table(title: str, rows: list[tuple[int, int, str, float]], reference: str | None) -> None:
    print(f"\n{title}\n")
    print(f"| qubits | batch | method | us / sample | vs {reference or 'first row'} |")
    print("|---:|---:|:---|---:|---:|")
    for n, B in dict.fromkeys((r[0], r[1]) for r in rows):
        group = [r for r in rows if r[0] == n and r[1] == B]
        base = next((r[3] for r in group if reference and r[2] == reference), group[0][3])
        for _, _, label, us in group:
            print(f"| {n} | {B} | {label} | {_fmt(us)} | {_fmt(us / base)}x |")


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def print_summary(rows: list[tuple[int, int, str, float]]) -> None:
    """Speed-up of Q-Store's adjoint over the fastest PennyLane row of each (qubits, batch)."""
    lines = []
    for n, B in dict.fromkeys((r[0], r[1]) for r in rows):
        ours = next(r[3] for r in rows if r[:2] == (n, B) and r[2].startswith("qstore adjoint"))
        theirs = [(r[3], r[2]) for r in rows if r[:2] == (n, B) and r[2].startswith("pennylane")]
        if theirs:
            best, label = min(theirs)
            lines.append(f"- {n} qubits, batch {B}: {_fmt(ours)} us vs {_fmt(best)} us ({label}): "
                         f"{best / ours:,.0f}x faster")
    if lines:
        print("\nQ-Store adjoint vs the fastest PennyLane method\n")
        print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--qubits", type=int, nargs="+", default=[8, 12])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    parser.add_argument("--repeats", type=int, default=20, help="timed runs per row (best is kept)")
    parser.add_argument("--pl-repeats", type=int, default=3, help="timed runs per PennyLane row")
    parser.add_argument("--budget", type=float, default=20.0, help="max seconds of timed runs per row")
    parser.add_argument("--cirq-samples", type=int, default=1, help="samples for the cirq.Simulator row")
    parser.add_argument("--threads", type=int, default=None,
                        help="statevector threads (default: the runtime budget, QSTORE_COMPUTE_THREADS)")
    parser.add_argument("--no-pennylane", action="store_true", help="skip PennyLane rows")
    parser.add_argument("--pl-memory-gib", type=float, default=4.0, help="memory cap per PennyLane run")
    parser.add_argument("--pl-timeout", type=float, default=600.0, help="seconds before a PennyLane run is dropped")
    args = parser.parse_args(argv)
    print(f"Q-Store gradient benchmark: {args.layers} layers, linear CNOTs, <Z> on every qubit; "
          f"{os.cpu_count()} CPUs")
    rows = gradient_table(args)
    print_table("Per-sample gradient time (all parameters; Q-Store adjoint also returns input gradients)",
                rows, "qstore adjoint (statevector)")
    print_summary(rows)
    print_table("One fused RX·RY·RZ layer on every qubit (complex128)", kernel_table(args),
                "rotation layer, numba kernel (1 thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
