"""Compiled kernels of the batched state-vector simulator.

A batch of states is one real array ``st`` of shape ``(2, D, B)``: ``st[0]`` holds
the real parts, ``st[1]`` the imaginary parts, ``D = 2**n`` basis states and the
batch on the last axis. Qubit 0 is the most significant bit of the basis index,
as in cirq. Keeping the batch innermost and real/imaginary split lets every
inner loop run over contiguous floats, so LLVM vectorises it (measured 15x over
NumPy einsum at 8 qubits, batch 256; see benchmarks/CIRCUITS.md).

Single-qubit matrices come as ``(2, 2, 2, Bm)`` arrays (re/im, row, column,
batch) with ``Bm`` either 1 (shared by the batch) or ``B`` (one per sample).
All kernels release the GIL so batch chunks can run on several threads.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(nogil=True, fastmath=True, cache=True)


@nb.njit(**_JIT)
def _apply_shared(st, s, D, m00r, m00i, m01r, m01i, m10r, m10i, m11r, m11i):
    B = st.shape[2]
    re = st[0]
    im = st[1]
    for hi in range(0, D, 2 * s):
        for lo in range(s):
            i0 = hi + lo
            i1 = i0 + s
            for b in range(B):
                r0 = re[i0, b]
                x0 = im[i0, b]
                r1 = re[i1, b]
                x1 = im[i1, b]
                re[i0, b] = m00r * r0 - m00i * x0 + m01r * r1 - m01i * x1
                im[i0, b] = m00r * x0 + m00i * r0 + m01r * x1 + m01i * r1
                re[i1, b] = m10r * r0 - m10i * x0 + m11r * r1 - m11i * x1
                im[i1, b] = m10r * x0 + m10i * r0 + m11r * x1 + m11i * r1


@nb.njit(**_JIT)
def _apply_per_sample(st, s, D, m):
    B = st.shape[2]
    re = st[0]
    im = st[1]
    mr = m[0]
    mi = m[1]
    for hi in range(0, D, 2 * s):
        for lo in range(s):
            i0 = hi + lo
            i1 = i0 + s
            for b in range(B):
                r0 = re[i0, b]
                x0 = im[i0, b]
                r1 = re[i1, b]
                x1 = im[i1, b]
                re[i0, b] = mr[0, 0, b] * r0 - mi[0, 0, b] * x0 + mr[0, 1, b] * r1 - mi[0, 1, b] * x1
                im[i0, b] = mr[0, 0, b] * x0 + mi[0, 0, b] * r0 + mr[0, 1, b] * x1 + mi[0, 1, b] * r1
                re[i1, b] = mr[1, 0, b] * r0 - mi[1, 0, b] * x0 + mr[1, 1, b] * r1 - mi[1, 1, b] * x1
                im[i1, b] = mr[1, 0, b] * x0 + mi[1, 0, b] * r0 + mr[1, 1, b] * x1 + mi[1, 1, b] * r1


@nb.njit(**_JIT)
def apply_one_qubit(st, q, n, m):
    """In place: apply the 2x2 matrix ``m`` (2, 2, 2, Bm) to qubit ``q`` of every state."""
    D = st.shape[1]
    s = 1 << (n - 1 - q)
    if m.shape[3] == 1:
        _apply_shared(st, s, D, m[0, 0, 0, 0], m[1, 0, 0, 0], m[0, 0, 1, 0], m[1, 0, 1, 0],
                      m[0, 1, 0, 0], m[1, 1, 0, 0], m[0, 1, 1, 0], m[1, 1, 1, 0])
    else:
        _apply_per_sample(st, s, D, m)


@nb.njit(**_JIT)
def apply_layer(st, mats):
    """In place: apply ``mats[:, q]`` (2, n, 2, 2, Bm) to every qubit q in turn."""
    n = mats.shape[1]
    for q in range(n):
        apply_one_qubit(st, q, n, mats[:, q])


@nb.njit(**_JIT)
def permute(st, src, out):
    """``out[:, j] = st[:, src[j]]``: a CNOT network is a permutation of basis states."""
    for j in range(src.shape[0]):
        k = src[j]
        out[0, j, :] = st[0, k, :]
        out[1, j, :] = st[1, k, :]


@nb.njit(**_JIT)
def product_state(v, out):
    """Fill ``out`` (2, D, B) with the product state of per-qubit vectors ``v`` (2, n, 2, Bv).

    ``Bv`` is 1 or B. The tensor product is grown one qubit at a time, so the
    cost is 2D multiplications rather than nD.
    """
    n = v.shape[1]
    B = out.shape[2]
    shared = v.shape[3] == 1
    for b in range(B):
        bv = 0 if shared else b
        out[0, 0, b] = 1.0
        out[1, 0, b] = 0.0
    size = 1
    for q in range(n):
        # Entries are laid out so qubit 0 ends up most significant: the new
        # qubit becomes the least significant bit of the growing prefix.
        for j in range(size - 1, -1, -1):
            for b in range(B):
                bv = 0 if shared else b
                ar = out[0, j, b]
                ai = out[1, j, b]
                v0r = v[0, q, 0, bv]
                v0i = v[1, q, 0, bv]
                v1r = v[0, q, 1, bv]
                v1i = v[1, q, 1, bv]
                out[0, 2 * j, b] = ar * v0r - ai * v0i
                out[1, 2 * j, b] = ar * v0i + ai * v0r
                out[0, 2 * j + 1, b] = ar * v1r - ai * v1i
                out[1, 2 * j + 1, b] = ar * v1i + ai * v1r
        size *= 2


@nb.njit(**_JIT)
def cross_terms(lam, psi, n, out):
    """Accumulate, per qubit q and sample b, what d<O>/dt needs from M_ab = sum_rest conj(lam_a) psi_b.

    For a generator P = n.sigma on qubit q (Hermitian, traceless) the adjoint
    method needs Im tr(P^T M) = n_z (Im M00 - Im M11) + n_x Im D - n_y Re D with
    D = M01 - conj(M10). ``out`` (n, 3, B) float64 receives [Im M00 - Im M11, Re D,
    Im D], so every single-qubit generator of a layer is read from one pass.
    """
    D = psi.shape[1]
    B = psi.shape[2]
    lr = lam[0]
    li = lam[1]
    pr = psi[0]
    pi = psi[1]
    for q in range(n):
        s = 1 << (n - 1 - q)
        acc = out[q]
        for hi in range(0, D, 2 * s):
            for lo in range(s):
                i0 = hi + lo
                i1 = i0 + s
                for b in range(B):
                    lr0 = lr[i0, b]
                    li0 = li[i0, b]
                    lr1 = lr[i1, b]
                    li1 = li[i1, b]
                    pr0 = pr[i0, b]
                    pi0 = pi[i0, b]
                    pr1 = pr[i1, b]
                    pi1 = pi[i1, b]
                    acc[0, b] += lr0 * pi0 - li0 * pr0 - lr1 * pi1 + li1 * pr1
                    acc[1, b] += lr0 * pr1 + li0 * pi1 - lr1 * pr0 - li1 * pi0
                    acc[2, b] += lr0 * pi1 - li0 * pr1 + lr1 * pi0 - li1 * pr0


@nb.njit(**_JIT)
def weight_diagonal(psi, w, out):
    """``out = w * psi`` for a real diagonal ``w`` (D, B): applies a Z-type observable."""
    D = psi.shape[1]
    B = psi.shape[2]
    for i in range(D):
        for b in range(B):
            out[0, i, b] = w[i, b] * psi[0, i, b]
            out[1, i, b] = w[i, b] * psi[1, i, b]


@nb.njit(**_JIT)
def probabilities(psi, out):
    """``out[i, b] = |psi[i, b]|^2`` in float64."""
    D = psi.shape[1]
    B = psi.shape[2]
    for i in range(D):
        for b in range(B):
            r = np.float64(psi[0, i, b])
            x = np.float64(psi[1, i, b])
            out[i, b] = r * r + x * x
