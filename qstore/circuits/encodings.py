"""Data encodings: angle and amplitude.

An encoding turns a feature row into the angles of its RY gates ("input angles",
one per gate, in circuit order). Every backend runs circuits from those angles,
and parameter-shift differentiates them gate by gate, then chains back to the
features with ``angles_vjp``.

* **angle**: feature f drives RY(pi * x_f) on qubit f, so features scaled to
  [0, 1] span half a Bloch great circle (|0> to |1>). With data re-uploading the
  same gates are repeated before every ansatz layer.
* **amplitude**: the padded, normalised feature vector becomes the state's
  amplitudes, prepared exactly by uniformly controlled RY rotations
  (Möttönen et al., quant-ph/0407010): level k rotates qubit k conditioned on
  qubits 0..k-1, decomposed into 2^k RY and 2^k CNOT gates along a Gray code.
  Only real gates are used, so the circuit runs on any backend.
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import cirq
import numpy as np
import sympy

ENCODINGS = ("angle", "amplitude")


class AngleEncoding:
    """RY(pi * x_f) on qubit f; ``repeats`` copies when re-uploading."""

    def __init__(self, n_features: int, repeats: int):
        self.n_features = n_features
        self.repeats = repeats

    @property
    def n_angles(self) -> int:
        return self.n_features * self.repeats

    def angles(self, X: np.ndarray) -> np.ndarray:
        """(B, F) features -> (B, repeats * F) gate angles."""
        angles = np.pi * X
        return angles if self.repeats == 1 else np.tile(angles, (1, self.repeats))

    def angles_vjp(self, X: np.ndarray, grad_angles: np.ndarray) -> np.ndarray:
        """Chain d/d(angles) (B, S) back to d/dX (B, F)."""
        if self.repeats == 1:
            return np.pi * grad_angles
        g = grad_angles.reshape(grad_angles.shape[0], self.repeats, self.n_features)
        return np.pi * g.sum(axis=1)

    def ops(self, qubits: Sequence[cirq.Qid], symbols: Sequence[sympy.Symbol]) -> list[cirq.Operation]:
        """Encoding gates of one upload; ``symbols`` are its F input angles."""
        return [cirq.ry(symbols[f])(qubits[f]) for f in range(self.n_features)]


class AmplitudeEncoding:
    """Exact amplitude state preparation on n qubits from up to 2^n features."""

    def __init__(self, n_qubits: int, n_features: int):
        self.n_qubits = n_qubits
        self.n_features = n_features

    @property
    def n_angles(self) -> int:
        return (1 << self.n_qubits) - 1

    def padded(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((X.shape[0], 1 << self.n_qubits))
        out[:, : X.shape[1]] = X
        return out

    def normalised(self, X: np.ndarray) -> np.ndarray:
        """The state the encoding prepares: padded rows scaled to unit norm, (B, 2^n)."""
        x = self.padded(X)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def tree_angles(self, X: np.ndarray) -> list[np.ndarray]:
        """RY angle of every node of the binary amplitude tree, level by level (B, 2^k)."""
        n = self.n_qubits
        x = self.padded(X)
        levels = []
        for k in range(n):
            blocks = x.reshape(x.shape[0], 1 << k, 2, -1)
            if k < n - 1:
                norms = np.linalg.norm(blocks, axis=3)
                levels.append(2.0 * np.arctan2(norms[:, :, 1], norms[:, :, 0]))
            else:
                # Leaves keep their signs, so real amplitudes of either sign come out exactly.
                levels.append(2.0 * np.arctan2(blocks[:, :, 1, 0], blocks[:, :, 0, 0]))
        return levels

    def angles(self, X: np.ndarray) -> np.ndarray:
        """(B, F) features -> (B, 2^n - 1) angles of the RY gates in circuit order."""
        return np.concatenate([t @ _gray_walsh(k) / (1 << k)
                               for k, t in enumerate(self.tree_angles(X))], axis=1)

    def tree_from_angles(self, angles: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for k in range(self.n_qubits):
            size = 1 << k
            out.append(angles[:, start:start + size] @ _gray_walsh(k).T)
            start += size
        return out

    def state(self, angles: np.ndarray) -> np.ndarray:
        """Real state (B, 2^n) the circuit prepares from its gate angles (any angles)."""
        amp = np.ones((angles.shape[0], 1))
        for theta in self.tree_from_angles(angles):
            amp = np.stack([amp * np.cos(theta / 2), amp * np.sin(theta / 2)], axis=2)
            amp = amp.reshape(angles.shape[0], -1)
        return amp

    def angles_vjp(self, X: np.ndarray, grad_angles: np.ndarray) -> np.ndarray:
        """Chain d/d(angles) back to d/dX.

        Where a subtree's norm is zero the angle map is not differentiable; that
        subtree's features get a zero derivative there.
        """
        n = self.n_qubits
        x = self.padded(X)
        B = x.shape[0]
        grad_x = np.zeros_like(x)
        start = 0
        for k in range(n):
            size = 1 << k
            g_theta = grad_angles[:, start:start + size] @ _gray_walsh(k).T / size
            start += size
            blocks = x.reshape(B, size, 2, -1)
            if k < n - 1:
                norms = np.linalg.norm(blocks, axis=3)
                left, right = norms[:, :, 0], norms[:, :, 1]
                denom = left ** 2 + right ** 2
                with np.errstate(divide="ignore", invalid="ignore"):
                    d_left = np.where(left > 0, -2.0 * right / (denom * left), 0.0)
                    d_right = np.where(right > 0, 2.0 * left / (denom * right), 0.0)
                d_left = np.where(denom > 0, d_left, 0.0)
                d_right = np.where(denom > 0, d_right, 0.0)
                scale = np.stack([d_left, d_right], axis=2)[..., None] * g_theta[:, :, None, None]
                grad_x += (scale * blocks).reshape(B, -1)
            else:
                a0, a1 = blocks[:, :, 0, 0], blocks[:, :, 1, 0]
                denom = a0 ** 2 + a1 ** 2
                with np.errstate(divide="ignore", invalid="ignore"):
                    inv = np.where(denom > 0, 2.0 / denom, 0.0)
                grad = np.stack([-a1 * inv, a0 * inv], axis=2) * g_theta[:, :, None]
                grad_x += grad.reshape(B, -1)
        return grad_x[:, : self.n_features]

    def ops(self, qubits: Sequence[cirq.Qid], symbols: Sequence[sympy.Symbol]) -> list[cirq.Operation]:
        """State preparation: uniformly controlled RY per level along a Gray code."""
        ops: list[cirq.Operation] = []
        start = 0
        for k in range(self.n_qubits):
            size = 1 << k
            target = qubits[k]
            for i in range(size):
                ops.append(cirq.ry(symbols[start + i])(target))
                if k == 0:
                    continue
                flipped = _gray(i) ^ _gray((i + 1) % size)
                control = k - 1 - (flipped.bit_length() - 1)
                ops.append(cirq.CNOT(qubits[control], target))
            start += size
        return ops


def _gray(i: int) -> int:
    return i ^ (i >> 1)


@cache
def _gray_walsh(k: int) -> np.ndarray:
    """M[j, i] = (-1)^(j . gray(i)): tree angle of control state j = (M @ gate angles)[j].

    With CNOTs placed where consecutive Gray codes differ, the RY gate i acts on
    the target with sign (-1)^(j . gray(i)) when the controls hold j. M is
    orthogonal up to 2^k, so gate angles are M^T tree / 2^k.
    """
    size = 1 << k
    j = np.arange(size)[:, None]
    g = np.array([_gray(i) for i in range(size)])[None, :]
    bits = np.bitwise_and(j, g)
    parity = np.array([[bin(int(v)).count("1") & 1 for v in row] for row in bits])
    m = 1.0 - 2.0 * parity
    m.setflags(write=False)
    return m
