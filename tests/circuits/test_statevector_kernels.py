"""Each compiled kernel against a plain NumPy (or cirq) oracle, at awkward batch sizes."""
from __future__ import annotations

import cirq
import numpy as np
import pytest

from qstore.circuits import statevector_kernels as kern
from qstore.circuits.ansatz import entangler_pairs, entangler_permutation, fused_rotations, generator_axes, ry

BATCHES = [1, 2, 3, 5, 37, 130]


def _split(z: np.ndarray) -> np.ndarray:
    """Complex (B, D) -> kernel layout (2, D, B)."""
    return np.ascontiguousarray(np.stack([z.real, z.imag]).transpose(0, 2, 1))


def _join(st: np.ndarray) -> np.ndarray:
    return (st[0] + 1j * st[1]).T


def _apply_numpy(psi: np.ndarray, q: int, n: int, mats: np.ndarray) -> np.ndarray:
    """Reference: (B, D) states, (B, 2, 2) matrices on qubit q."""
    t = psi.reshape((psi.shape[0],) + (2,) * n)
    t = np.moveaxis(np.einsum("bij,bj...->bi...", mats, np.moveaxis(t, q + 1, 1)), 1, q + 1)
    return t.reshape(psi.shape)


def _random_states(rng, batch: int, n: int) -> np.ndarray:
    return rng.normal(size=(batch, 2 ** n)) + 1j * rng.normal(size=(batch, 2 ** n))


@pytest.mark.parametrize("n", [1, 3, 9])
@pytest.mark.parametrize("batch", BATCHES)
def test_apply_one_qubit_shared_and_per_sample(rng, n: int, batch: int) -> None:
    psi = _random_states(rng, batch, n)
    for per_sample in (False, True):
        mats = rng.normal(size=(batch if per_sample else 1, 2, 2)) + 1j * rng.normal(size=(batch if per_sample
                                                                                         else 1, 2, 2))
        kmats = np.ascontiguousarray(np.stack([mats.real, mats.imag]).transpose(0, 2, 3, 1))
        for q in range(n):
            st = _split(psi)
            kern.apply_one_qubit(st, q, n, kmats)
            expected = _apply_numpy(psi, q, n, np.broadcast_to(mats, (batch, 2, 2)))
            np.testing.assert_allclose(_join(st), expected, atol=1e-12)


@pytest.mark.parametrize("n", [1, 4, 9])
@pytest.mark.parametrize("batch", BATCHES)
def test_cross_terms_match_einsum(rng, n: int, batch: int) -> None:
    lam, psi = _random_states(rng, batch, n), _random_states(rng, batch, n)
    out = np.zeros((n, 3, batch))
    kern.cross_terms(_split(lam), _split(psi), n, out)
    for q in range(n):
        lt = lam.T.reshape(2 ** q, 2, -1, batch)
        pt = psi.T.reshape(2 ** q, 2, -1, batch)
        m = np.einsum("xaib,xcib->acb", lt.conj(), pt)
        d = m[0, 1] - m[1, 0].conj()
        np.testing.assert_allclose(out[q], [m[0, 0].imag - m[1, 1].imag, d.real, d.imag], atol=1e-9)


def test_fused_layer_matches_matrix_products(rng) -> None:
    n, layers, batch = 3, 2, 4
    theta = rng.uniform(-np.pi, np.pi, size=(batch, 3 * n * layers))
    enc = rng.uniform(-np.pi, np.pi, size=(2, batch))                 # encoding on qubits 0 and 1
    reference = fused_rotations(theta, n, layers)                     # (L, n, B, 2, 2)
    for layer in range(layers):
        for adjoint in (False, True):
            out = np.empty((2, n, 2, 2, batch))
            kern.fused_layer(theta, layer, n, enc if layer == 0 else np.zeros((0, 1)), adjoint, out)
            expected = reference[layer].copy()
            if layer == 0:
                expected[:2] = expected[:2] @ ry(enc)
            if adjoint:
                expected = np.conj(np.swapaxes(expected, -1, -2))
            np.testing.assert_allclose(out[0] + 1j * out[1], expected.transpose(0, 2, 3, 1), atol=1e-12)


def test_generator_axes_are_rotated_paulis(rng) -> None:
    theta = rng.uniform(-np.pi, np.pi, size=(1, 3))
    axes = generator_axes(theta, 1, 1)[0, 0, 0]
    a, b, c = theta[0]
    h = 1e-6
    # dW/dt W^dagger = -i/2 (m . sigma) for every parameter t of W = RZ(c) RY(b) RX(a) RY(e)
    e = 0.7

    def full(a, b, c, e):
        return fused_rotations(np.array([[a, b, c]]), 1, 1)[0, 0, 0] @ ry(np.array(e))

    w = full(a, b, c, e)
    for k, shift in enumerate([(h, 0, 0, 0), (0, h, 0, 0), (0, 0, h, 0), (0, 0, 0, h)]):
        dw = (full(*np.add((a, b, c, e), shift)) - full(*np.subtract((a, b, c, e), shift))) / (2 * h)
        pauli = 2j * dw @ w.conj().T
        m = axes[k]
        expected = np.array([[m[2], m[0] - 1j * m[1]], [m[0] + 1j * m[1], -m[2]]])
        np.testing.assert_allclose(pauli, expected, atol=1e-8)


@pytest.mark.parametrize("entanglement", ["linear", "circular", "full"])
def test_entangler_permutation_is_the_cnot_network(rng, entanglement: str) -> None:
    n = 4
    pairs = entangler_pairs(n, entanglement)
    qubits = cirq.LineQubit.range(n)
    unitary = cirq.Circuit(cirq.CNOT(qubits[c], qubits[t]) for c, t in pairs).unitary(qubit_order=qubits)
    psi = _random_states(rng, 3, n)
    src = entangler_permutation(n, pairs)
    out = np.empty((2, 2 ** n, 3))
    kern.permute(_split(psi), src, out)
    np.testing.assert_allclose(_join(out), psi @ unitary.T, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 3])
def test_product_state(rng, batch: int) -> None:
    n = 4
    v = rng.normal(size=(n, 2, batch)) + 1j * rng.normal(size=(n, 2, batch))
    out = np.empty((2, 2 ** n, batch))
    kern.product_state(np.ascontiguousarray(np.stack([v.real, v.imag])), out)
    for b in range(batch):
        expected = v[0, :, b]
        for q in range(1, n):
            expected = np.kron(expected, v[q, :, b])
        np.testing.assert_allclose(out[0, :, b] + 1j * out[1, :, b], expected, atol=1e-12)
