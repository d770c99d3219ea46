"""The gradient benchmark script runs end to end (tiny sizes, no PennyLane)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gradients.py"


def test_benchmark_prints_its_tables(capsys) -> None:
    spec = importlib.util.spec_from_file_location("gradients_benchmark", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--qubits", "2", "--layers", "1", "--batches", "1", "3", "--repeats", "1",
                       "--no-pennylane"]) == 0
    out = capsys.readouterr().out
    assert "| 2 | 3 | qstore adjoint (statevector) |" in out
    assert "cirq.Simulator parameter-shift" in out
    assert "rotation layer, numba kernel" in out
