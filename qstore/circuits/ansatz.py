"""Hardware-efficient ansatz: RX·RY·RZ on every qubit, then a CNOT entangler.

Parameter order is layer-major, then qubit, then axis:
``theta[(layer * n_qubits + qubit) * 3 + axis]`` with axis 0, 1, 2 = RX, RY, RZ.
The same order is used by the cirq circuit, every backend and every gradient.
"""
from __future__ import annotations

from collections.abc import Sequence

import cirq
import numpy as np
import sympy

ENTANGLEMENTS = ("linear", "circular", "full")

PAULI_X = np.array([[0, 1], [1, 0]], dtype=np.complex128)
PAULI_Y = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
PAULI_Z = np.array([[1, 0], [0, -1]], dtype=np.complex128)


def entangler_pairs(n_qubits: int, entanglement: str) -> list[tuple[int, int]]:
    """(control, target) pairs of one entangling block, in application order.

    ``circular`` closes the ring with CNOT(n-1, 0) only for n > 2: on two qubits
    the closing edge is the pair the chain already entangles.
    """
    if entanglement == "full":
        return [(i, j) for i in range(n_qubits) for j in range(i + 1, n_qubits)]
    pairs = [(q, q + 1) for q in range(n_qubits - 1)]
    if entanglement == "circular" and n_qubits > 2:
        pairs.append((n_qubits - 1, 0))
    return pairs


def entangler_permutation(n_qubits: int, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Source index of every basis state after the CNOT network: ``new[j] = old[src[j]]``."""
    index = np.arange(1 << n_qubits, dtype=np.int64)
    image = index.copy()
    for control, target in pairs:
        cbit = 1 << (n_qubits - 1 - control)
        tbit = 1 << (n_qubits - 1 - target)
        image = np.where(image & cbit, image ^ tbit, image)
    src = np.empty_like(index)
    src[image] = index
    return src


def layer_ops(qubits: Sequence[cirq.Qid], symbols: Sequence[sympy.Symbol],
              pairs: Sequence[tuple[int, int]]) -> list[cirq.Operation]:
    """cirq operations of one ansatz layer; ``symbols`` are its 3n parameters in order."""
    ops: list[cirq.Operation] = []
    for q, qubit in enumerate(qubits):
        ops += [cirq.rx(symbols[3 * q])(qubit), cirq.ry(symbols[3 * q + 1])(qubit),
                cirq.rz(symbols[3 * q + 2])(qubit)]
    ops += [cirq.CNOT(qubits[c], qubits[t]) for c, t in pairs]
    return ops


def rotation(a: np.ndarray, pauli: np.ndarray) -> np.ndarray:
    """exp(-i a P / 2) = cos(a/2) I - i sin(a/2) P for an array of angles, shape a.shape + (2, 2)."""
    half = np.asarray(a, dtype=np.float64)[..., None, None] / 2
    return np.cos(half) * np.eye(2) - 1j * np.sin(half) * pauli


def rx(a: np.ndarray) -> np.ndarray:
    return rotation(a, PAULI_X)


def ry(a: np.ndarray) -> np.ndarray:
    return rotation(a, PAULI_Y)


def rz(a: np.ndarray) -> np.ndarray:
    """exp(-i a Z / 2), shape a.shape + (2, 2)."""
    out = np.zeros(np.shape(a) + (2, 2), dtype=np.complex128)
    out[..., 0, 0] = np.exp(-0.5j * a)
    out[..., 1, 1] = np.exp(0.5j * a)
    return out


def matmul2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched 2x2 product; elementwise, which beats np.matmul on many tiny matrices."""
    a, b = np.broadcast_arrays(a, b)
    out = np.empty(a.shape, dtype=np.complex128)
    for i in range(2):
        for j in range(2):
            out[..., i, j] = a[..., i, 0] * b[..., 0, j] + a[..., i, 1] * b[..., 1, j]
    return out


def fused_rotations(theta: np.ndarray, n_qubits: int, layers: int) -> np.ndarray:
    """RZ·RY·RX of every (layer, qubit) as one 2x2: theta (Bm, P) -> (layers, n, Bm, 2, 2)."""
    t = theta.reshape(theta.shape[0], layers, n_qubits, 3).transpose(1, 2, 0, 3)
    return matmul2(rz(t[..., 2]), matmul2(ry(t[..., 1]), rx(t[..., 0])))


def generator_axes(theta: np.ndarray, n_qubits: int, layers: int) -> np.ndarray:
    """Bloch axes of each block parameter's generator, moved to the block's output.

    A block is ``RZ(c) RY(b) RX(a) [RY(e)]`` on one qubit (RY(e) is an encoding
    gate when present). If ``W = A R(t) B`` with ``R(t) = exp(-i t P / 2)``, then
    ``dW/dt = -i/2 (A P A^dagger) W``: the derivative is the Pauli P rotated by
    the gates after it. The rotated Pauli is ``m . sigma``; this returns the unit
    vectors m, so one overlap per qubit at the layer output gives every derivative.
    The e axis does not depend on e, so it is filled whether or not the block
    has an encoding gate.

    Returns (layers, n, Bm, 4, 3): axes for a, b, c, e.
    """
    t = theta.reshape(theta.shape[0], layers, n_qubits, 3).transpose(1, 2, 0, 3)
    ca, sa = np.cos(t[..., 0]), np.sin(t[..., 0])
    cb, sb = np.cos(t[..., 1]), np.sin(t[..., 1])
    cc, sc = np.cos(t[..., 2]), np.sin(t[..., 2])
    out = np.zeros(t.shape[:3] + (4, 3))
    out[..., 0, :] = np.stack([cc * cb, sc * cb, -sb], axis=-1)          # RZ RY X (RZ RY)^dagger
    out[..., 1, :] = np.stack([-sc, cc, np.zeros_like(cc)], axis=-1)     # RZ Y RZ^dagger
    out[..., 2, 2] = 1.0                                                 # Z
    out[..., 3, :] = np.stack([sa * sb * cc - ca * sc, sa * sb * sc + ca * cc, sa * cb], axis=-1)
    return out


def pauli_matrix(axis: np.ndarray) -> np.ndarray:
    """m . sigma for axes (..., 3) -> (..., 2, 2)."""
    return (axis[..., 0, None, None] * PAULI_X + axis[..., 1, None, None] * PAULI_Y
            + axis[..., 2, None, None] * PAULI_Z)
