"""Stored quantum states: normalised complex128 vectors of length 2ⁿ, measured by the Born rule.

Bitstrings are big-endian, as in cirq: qubit 0 is the leftmost character. With ``qubits``
the bitstring lists those qubits in the order given (a marginal distribution).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qstore.errors import InvalidArgument

MAX_QUBITS = 30
MAX_SHOTS = 10_000_000
NORM_TOLERANCE = 1e-6


def check_state(statevector: Any) -> np.ndarray:
    try:
        psi = np.asarray(statevector, dtype=np.complex128)
    except (TypeError, ValueError):
        raise InvalidArgument("a state must be a 1-D array of complex amplitudes", "invalid_state") from None
    n = len(psi).bit_length() - 1 if psi.ndim == 1 else -1
    if psi.ndim != 1 or len(psi) < 2 or len(psi) != 1 << n:
        raise InvalidArgument(f"a state needs 2**n amplitudes (n ≥ 1), got shape {psi.shape}", "invalid_state")
    if n > MAX_QUBITS:
        raise InvalidArgument(f"at most {MAX_QUBITS} qubits can be stored", "invalid_state")
    if not np.isfinite(psi.view(np.float64)).all():
        raise InvalidArgument("a state contains NaN or Inf", "invalid_state")
    norm = float(np.linalg.norm(psi))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        raise InvalidArgument(f"a state must be normalised (norm is {norm:.9g}); divide it by "
                              "np.linalg.norm(state)", "invalid_state")
    return psi


def born_probabilities(psi: np.ndarray, qubits: list[int] | None) -> np.ndarray:
    """Probabilities over 2^len(qubits) outcomes, qubits in the order given."""
    n = len(psi).bit_length() - 1
    probs = np.abs(psi) ** 2
    if qubits is None:
        return probs / probs.sum()
    tensor = probs.reshape((2,) * n)
    others = tuple(q for q in range(n) if q not in qubits)
    marginal = tensor.sum(axis=others) if others else tensor
    kept = sorted(qubits)
    marginal = np.transpose(marginal, [kept.index(q) for q in qubits])
    return (marginal / marginal.sum()).reshape(-1)


def sample_counts(probs: np.ndarray, width: int, shots: int, rng: np.random.Generator) -> dict[str, int]:
    counts = rng.multinomial(shots, probs)
    hit = np.flatnonzero(counts)  # at most `shots` outcomes, out of 2^width
    return {format(i, f"0{width}b"): int(c) for i, c in zip(hit.tolist(), counts[hit].tolist())}


def check_shots(shots: Any) -> int:
    if isinstance(shots, bool) or not isinstance(shots, (int, np.integer)) or not 1 <= shots <= MAX_SHOTS:
        raise InvalidArgument(f"shots must be an integer in 1..{MAX_SHOTS}", "invalid_argument")
    return int(shots)


def check_qubits(qubits: Any, n: int) -> list[int] | None:
    if qubits is None:
        return None
    qubits = list(qubits)
    if not qubits or len(set(qubits)) != len(qubits) or any(
            isinstance(q, bool) or not isinstance(q, (int, np.integer)) or not 0 <= q < n for q in qubits):
        raise InvalidArgument(f"qubits must be distinct integers in 0..{n - 1}", "invalid_argument")
    return [int(q) for q in qubits]


def measure(psi: np.ndarray, shots: int, qubits: list[int] | None, rng: np.random.Generator) -> dict[str, int]:
    """Born-rule counts of ``shots`` measurements of ``psi`` (on ``qubits``, in that order)."""
    n = len(psi).bit_length() - 1
    probs = born_probabilities(psi, qubits)
    return sample_counts(probs, len(qubits) if qubits else n, shots, rng)
