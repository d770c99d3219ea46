"""Whole-circuit kernels for the common training case: one compiled call per direction.

The case: angle encoding without re-uploading, one parameter vector shared by the batch, exact
expectations of Z-products. A training step of a small circuit (a PyTorch layer's batch of 32
at 8 qubits) spends more in Python between kernel calls, and in passes over a state too big
for L1, than in arithmetic; these kernels do a step's forward and its adjoint backward in one
call each:

* the batch runs in chunks of ``W = 8`` samples, each chunk's states one contiguous
  ``(2, D, W)`` block (re/im, basis state, sample): 32 KiB at 8 qubits, so a chunk goes through
  every layer from L1 and each sample row is one vector register;
* layer 0 (encoding RY and the first rotations) is a product state, built directly;
* the CNOT network is a gather from one layer's saved state into the next layer's slot of the
  tape (no separate permutation pass); the last one is never applied: the observables' signs
  are permuted instead (``<O> = sum_j sign(inv[j]) |psi_j|^2`` with ``inv`` the inverse map);
* the backward pass runs the cotangent back through the tape, reads each layer's derivatives
  from one 2x2 overlap per qubit (as ``statevector_kernels.cross_terms``) and sums them over the
  batch in the kernel: shared parameters need only the batch sums, the encoding angles the
  per-sample overlaps of layer 0.

``statevector.StatevectorBackend.expectations_vjp`` uses them when the circuit fits the case;
``tests/circuits/test_fused.py`` checks them against cirq and the general path.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(nogil=True, fastmath=True, cache=True)
#: samples per chunk (one vector register of float64 per basis state with AVX-512)
W = 8


@nb.njit(**_JIT)
def _n_qubits(D):
    n = 0
    while (1 << n) < D:
        n += 1
    return n


@nb.njit(**_JIT)
def _block(theta, k):
    """The fused block RZ(c) RY(b) RX(a) of parameters theta[k:k+3] as (w00, w01) (W is SU(2))."""
    ha, hb, hc = 0.5 * theta[k], 0.5 * theta[k + 1], 0.5 * theta[k + 2]
    ca, sa = np.cos(ha), np.sin(ha)
    cb, sb = np.cos(hb), np.sin(hb)
    ec, es = np.cos(hc), np.sin(hc)
    al, be, ga, de = cb * ca, sb * sa, sb * ca, cb * sa
    return ec * al + es * be, ec * be - es * al, -ec * ga - es * de, es * ga - ec * de


@nb.njit(**_JIT)
def _layer_matrices(theta, n, L, adjoint):
    """(L, n, 8) entries [m00r, m00i, m01r, m01i, m10r, m10i, m11r, m11i] of every block (or its adjoint)."""
    m = np.empty((L, n, 8))
    for layer in range(L):
        for q in range(n):
            w00r, w00i, w01r, w01i = _block(theta, (layer * n + q) * 3)
            # W = [[w00, w01], [-conj(w01), conj(w00)]]; W^dagger = [[conj(w00), -w01], [conj(w01), w00]]
            if adjoint:
                m[layer, q, :] = (w00r, -w00i, -w01r, -w01i, w01r, -w01i, w00r, w00i)
            else:
                m[layer, q, :] = (w00r, w00i, w01r, w01i, -w01r, w01i, w00r, -w00i)
    return m


@nb.njit(**_JIT)
def _apply(st, n, m):
    """In place: the n single-qubit matrices ``m`` (n, 8) on a chunk ``st`` (2, D, W)."""
    D = st.shape[1]
    re = st[0]
    im = st[1]
    for q in range(n):
        s = 1 << (n - 1 - q)
        m00r, m00i, m01r, m01i, m10r, m10i, m11r, m11i = (m[q, 0], m[q, 1], m[q, 2], m[q, 3], m[q, 4], m[q, 5],
                                                          m[q, 6], m[q, 7])
        for base in range(0, D, 2 * s):
            for i0 in range(base, base + s):
                i1 = i0 + s
                for b in range(W):
                    r0 = re[i0, b]
                    x0 = im[i0, b]
                    r1 = re[i1, b]
                    x1 = im[i1, b]
                    re[i0, b] = m00r * r0 - m00i * x0 + m01r * r1 - m01i * x1
                    im[i0, b] = m00r * x0 + m00i * r0 + m01r * x1 + m01i * r1
                    re[i1, b] = m10r * r0 - m10i * x0 + m11r * r1 - m11i * x1
                    im[i1, b] = m10r * x0 + m10i * r0 + m11r * x1 + m11i * r1


@nb.njit(**_JIT)
def _gather(st, src, out):
    """``out[:, j] = st[:, src[j]]`` on chunks (2, D, W)."""
    for j in range(src.shape[0]):
        k = src[j]
        for b in range(W):
            out[0, j, b] = st[0, k, b]
            out[1, j, b] = st[1, k, b]


@nb.njit(**_JIT)
def _product_state(theta, enc, c, n, out):
    """Chunk ``c`` of the state after layer 0: qubit q in W_q RY(enc[b, q]) |0> (RY only for q < F)."""
    B, F = enc.shape
    v = np.empty((n, 4, W))                     # per qubit: amplitudes of |0> and |1>, re and im
    for q in range(n):
        w00r, w00i, w01r, w01i = _block(theta, 3 * q)
        for b in range(W):
            row = c * W + b
            ce, se = 1.0, 0.0
            if q < F and row < B:
                ce, se = np.cos(0.5 * enc[row, q]), np.sin(0.5 * enc[row, q])
            # W RY(e)|0> = ce W[:, 0] + se W[:, 1], W[:, 0] = (w00, -conj(w01)), W[:, 1] = (w01, conj(w00))
            v[q, 0, b] = ce * w00r + se * w01r
            v[q, 1, b] = ce * w00i + se * w01i
            v[q, 2, b] = -ce * w01r + se * w00r
            v[q, 3, b] = ce * w01i - se * w00i
    for b in range(W):
        out[0, 0, b] = 1.0
        out[1, 0, b] = 0.0
    size = 1
    for q in range(n):
        # qubit q becomes the least significant bit of the growing prefix (qubit 0 most significant)
        for j in range(size - 1, -1, -1):
            for b in range(W):
                ar = out[0, j, b]
                ai = out[1, j, b]
                out[0, 2 * j, b] = ar * v[q, 0, b] - ai * v[q, 1, b]
                out[1, 2 * j, b] = ar * v[q, 1, b] + ai * v[q, 0, b]
                out[0, 2 * j + 1, b] = ar * v[q, 2, b] - ai * v[q, 3, b]
                out[1, 2 * j + 1, b] = ar * v[q, 3, b] + ai * v[q, 2, b]
        size *= 2


@nb.njit(**_JIT)
def forward(theta, enc, src, signs, tape, out):
    """Expectations ``out`` (B, K) of ``signs`` (K, D), permuted to the last layer's frame.

    ``theta`` (P,), ``enc`` (B, F) encoding angles, ``src`` (D,) the CNOT network's gather map;
    ``tape`` (C, L, 2, D, W) receives the state after every layer's rotations, chunk by chunk.
    """
    C, L, _, D, _ = tape.shape
    B, K = out.shape
    n = _n_qubits(D)
    mats = _layer_matrices(theta, n, L, False)
    acc = np.empty((K, W))
    for c in range(C):
        _product_state(theta, enc, c, n, tape[c, 0])
        for layer in range(1, L):
            _gather(tape[c, layer - 1], src, tape[c, layer])
            _apply(tape[c, layer], n, mats[layer])
        last = tape[c, L - 1]
        acc[:] = 0.0
        for j in range(D):
            for k in range(K):
                sign = signs[k, j]
                for b in range(W):
                    acc[k, b] += sign * (last[0, j, b] * last[0, j, b] + last[1, j, b] * last[1, j, b])
        for b in range(min(W, B - c * W)):
            for k in range(K):
                out[c * W + b, k] = acc[k, b]


@nb.njit(**_JIT)
def _overlaps(lam, psi, n, acc):
    """acc (n, 3, W) += [Im M00 - Im M11, Re D, Im D] per qubit, as ``statevector_kernels.cross_terms``."""
    D = psi.shape[1]
    lr = lam[0]
    li = lam[1]
    pr = psi[0]
    pi = psi[1]
    for q in range(n):
        s = 1 << (n - 1 - q)
        for base in range(0, D, 2 * s):
            for i0 in range(base, base + s):
                i1 = i0 + s
                for b in range(W):
                    lr0 = lr[i0, b]
                    li0 = li[i0, b]
                    lr1 = lr[i1, b]
                    li1 = li[i1, b]
                    pr0 = pr[i0, b]
                    pi0 = pi[i0, b]
                    pr1 = pr[i1, b]
                    pi1 = pi[i1, b]
                    acc[q, 0, b] += lr0 * pi0 - li0 * pr0 - lr1 * pi1 + li1 * pr1
                    acc[q, 1, b] += lr0 * pr1 + li0 * pi1 - lr1 * pr0 - li1 * pi0
                    acc[q, 2, b] += lr0 * pi1 - li0 * pr1 + lr1 * pi0 - li1 * pr0


@nb.njit(**_JIT)
def backward(theta, enc, inv, signs, tape, grad_out, g_theta, g_enc):
    """Adjoint pass for cotangent ``grad_out`` (B, K) of ``forward``'s expectations.

    Adds d/d theta summed over the batch to ``g_theta`` (P,) and writes d/d(encoding angle)
    to ``g_enc`` (B, F).
    """
    C, L, _, D, _ = tape.shape
    B, K = grad_out.shape
    F = enc.shape[1]
    n = _n_qubits(D)
    adj = _layer_matrices(theta, n, L, True)
    cross = np.zeros((L, n, 3))
    acc = np.empty((n, 3, W))
    lam = np.empty((2, D, W))
    tmp = np.empty((2, D, W))
    diag = np.empty(W)
    for c in range(C):
        rows = min(W, B - c * W)
        last = tape[c, L - 1]
        for j in range(D):
            diag[:] = 0.0
            for b in range(rows):
                for k in range(K):
                    diag[b] += grad_out[c * W + b, k] * signs[k, j]
            for b in range(W):
                lam[0, j, b] = diag[b] * last[0, j, b]
                lam[1, j, b] = diag[b] * last[1, j, b]
        for layer in range(L - 1, -1, -1):
            acc[:] = 0.0
            _overlaps(lam, tape[c, layer], n, acc)
            for q in range(n):
                for t in range(3):
                    for b in range(W):
                        cross[layer, q, t] += acc[q, t, b]
            if layer > 0:
                _apply(lam, n, adj[layer])
                _gather(lam, inv, tmp)
                lam, tmp = tmp, lam
        # encoding angles: the RY(e) generator moved to the block's output (ansatz.generator_axes)
        for q in range(F):
            k = 3 * q
            ca, sa = np.cos(theta[k]), np.sin(theta[k])
            cb, sb = np.cos(theta[k + 1]), np.sin(theta[k + 1])
            cc, sc = np.cos(theta[k + 2]), np.sin(theta[k + 2])
            ex, ey, ez = sa * sb * cc - ca * sc, sa * sb * sc + ca * cc, sa * cb
            for b in range(rows):
                g_enc[c * W + b, q] = ez * acc[q, 0, b] + ex * acc[q, 2, b] - ey * acc[q, 1, b]
    for layer in range(L):
        for q in range(n):
            k = (layer * n + q) * 3
            cb, sb = np.cos(theta[k + 1]), np.sin(theta[k + 1])
            cc, sc = np.cos(theta[k + 2]), np.sin(theta[k + 2])
            delta, re_d, im_d = cross[layer, q, 0], cross[layer, q, 1], cross[layer, q, 2]
            g_theta[k] += -sb * delta + cc * cb * im_d - sc * cb * re_d
            g_theta[k + 1] += -sc * im_d - cc * re_d
            g_theta[k + 2] += delta
