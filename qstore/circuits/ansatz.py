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

_I2 = np.eye(2, dtype=np.complex128)
PAULI_X = np.array([[0, 1], [1, 0]], dtype=np.complex128)
PAULI_Y = np.array([[0, -1j], [1j, 0]], dtype=np.complex128)
PAULI_Z = np.array([[1, 0], [0, -1]], dtype=np.complex128)


def entangler_pairs(n_qubits: int, entanglement: str) -> list[tuple[int, int]]:
    """(control, target) pairs of one entangling block, in application order.

    ``circular`` closes the ring with CNOT(n-1, 0) only for n > 2, because for two
    qubits that gate would just undo part of the linear chain's pattern.
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


def rx(a: np.ndarray) -> np.ndarray:
    """exp(-i a X / 2) for an array of angles, shape a.shape + (2, 2)."""
    c, s = np.cos(a / 2), np.sin(a / 2)
    out = np.empty(np.shape(a) + (2, 2), dtype=np.complex128)
    out[..., 0, 0] = c
    out[..., 1, 1] = c
    out[..., 0, 1] = -1j * s
    out[..., 1, 0] = -1j * s
    return out


def ry(a: np.ndarray) -> np.ndarray:
    """exp(-i a Y / 2), shape a.shape + (2, 2)."""
    c, s = np.cos(a / 2), np.sin(a / 2)
    out = np.empty(np.shape(a) + (2, 2), dtype=np.complex128)
    out[..., 0, 0] = c
    out[..., 1, 1] = c
    out[..., 0, 1] = -s
    out[..., 1, 0] = s
    return out


def rz(a: np.ndarray) -> np.ndarray:
    """exp(-i a Z / 2), shape a.shape + (2, 2)."""
    out = np.zeros(np.shape(a) + (2, 2), dtype=np.complex128)
    out[..., 0, 0] = np.exp(-0.5j * a)
    out[..., 1, 1] = np.exp(0.5j * a)
    return out


def _conj(u: np.ndarray, p: np.ndarray) -> np.ndarray:
    """u p u^dagger over leading axes."""
    return u @ p @ np.conj(np.swapaxes(u, -1, -2))


def fused_rotations(theta: np.ndarray, n_qubits: int, layers: int) -> np.ndarray:
    """RZ·RY·RX of every (layer, qubit) as one 2x2: theta (Bm, P) -> (layers, n, Bm, 2, 2)."""
    t = theta.reshape(theta.shape[0], layers, n_qubits, 3).transpose(1, 2, 0, 3)
    return rz(t[..., 2]) @ ry(t[..., 1]) @ rx(t[..., 0])


def block_generators(theta: np.ndarray, n_qubits: int, layers: int) -> np.ndarray:
    """Hermitian generators of each block parameter, moved to the block's output.

    A block is ``RZ(c) RY(b) RX(a) [RY(e)]`` on one qubit (the RY(e) is an
    encoding gate when present). For a parameter t with ``dW/dt = A (-i/2 P) B``
    and ``W = A R(t) B`` the derivative at the output is ``-i/2 (A P A^dagger)``,
    so one overlap matrix per qubit at the layer output gives every derivative.

    Returns (layers, n, Bm, 4, 2, 2): generators of a, b, c and e. The e generator
    does not depend on e itself, so it is filled whether or not the block has an
    encoding gate.
    """
    t = theta.reshape(theta.shape[0], layers, n_qubits, 3).transpose(1, 2, 0, 3)
    zr = rz(t[..., 2])
    zy = zr @ ry(t[..., 1])
    zyx = zy @ rx(t[..., 0])
    out = np.empty(t.shape[:3] + (4, 2, 2), dtype=np.complex128)
    out[..., 0, :, :] = _conj(zy, PAULI_X)
    out[..., 1, :, :] = _conj(zr, PAULI_Y)
    out[..., 2, :, :] = PAULI_Z
    out[..., 3, :, :] = _conj(zyx, PAULI_Y)
    return out
