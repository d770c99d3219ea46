"""Compiled kernels of the batched state-vector simulator.

A batch of states is one real array ``st`` of shape ``(2, D, B)``: ``st[0]`` holds
the real parts, ``st[1]`` the imaginary parts, ``D = 2**n`` basis states and the
batch on the last axis. Qubit 0 is the most significant bit of the basis index,
as in cirq. Keeping the batch innermost and real/imaginary split lets every
inner loop run over contiguous floats, so LLVM vectorises it (a rotation layer
is 50x faster than NumPy tensor contractions at 8 and 12 qubits; see the
gradients section of benchmarks/README.md).

Single-qubit matrices come as ``(2, 2, 2, Bm)`` arrays (re/im, row, column,
batch) with ``Bm`` either 1 (shared by the batch) or ``B`` (one per sample).
All kernels release the GIL so batch chunks can run on several threads.
"""
from __future__ import annotations

import numba as nb
import numpy as np

_JIT = dict(nogil=True, fastmath=True, cache=True)
# Longest block of partial sums in cross_terms.
_LONG_RUN = 256


@nb.njit(**_JIT)
def _apply_shared(st, s, m00r, m00i, m01r, m01i, m10r, m10i, m11r, m11i):
    # For a fixed high part the amplitudes with qubit q = 0 form one contiguous
    # run of s*B floats and their partners the next run. Looping over the two
    # runs as separate slices gives LLVM long, provably disjoint vector loops
    # even for a batch of 1 (2-5x faster than indexing one array twice).
    D = st.shape[1]
    B = st.shape[2]
    re = st[0].reshape(D * B)
    im = st[1].reshape(D * B)
    run = s * B
    for base in range(0, D * B, 2 * run):
        ra = re[base:base + run]
        ia = im[base:base + run]
        rb = re[base + run:base + 2 * run]
        ib = im[base + run:base + 2 * run]
        for k in range(run):
            r0 = ra[k]
            x0 = ia[k]
            r1 = rb[k]
            x1 = ib[k]
            ra[k] = m00r * r0 - m00i * x0 + m01r * r1 - m01i * x1
            ia[k] = m00r * x0 + m00i * r0 + m01r * x1 + m01i * r1
            rb[k] = m10r * r0 - m10i * x0 + m11r * r1 - m11i * x1
            ib[k] = m10r * x0 + m10i * r0 + m11r * x1 + m11i * r1


@nb.njit(**_JIT)
def _apply_per_sample(st, s, m):
    D = st.shape[1]
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
    s = 1 << (n - 1 - q)
    if m.shape[3] == 1:
        _apply_shared(st, s, m[0, 0, 0, 0], m[1, 0, 0, 0], m[0, 0, 1, 0], m[1, 0, 1, 0],
                      m[0, 1, 0, 0], m[1, 1, 0, 0], m[0, 1, 1, 0], m[1, 1, 1, 0])
    else:
        _apply_per_sample(st, s, m)


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
def _cross_short(lr, li, pr, pi, s, acc):
    # Short runs (low qubits, small batches): index pairs directly, one
    # accumulator per sample.
    D = pr.shape[0]
    B = pr.shape[1]
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
def _cross_long(lr, li, pr, pi, s, block, part, acc):
    # Long runs: the s*B amplitudes with qubit q = 0 under one high part are
    # contiguous, so sum them as slices into partial sums over ``block`` (a
    # multiple of B; position k belongs to sample k % B).
    D = pr.shape[0]
    B = pr.shape[1]
    lr = lr.reshape(D * B)
    li = li.reshape(D * B)
    pr = pr.reshape(D * B)
    pi = pi.reshape(D * B)
    run = s * B
    part[:] = 0.0
    a0 = part[0]
    a1 = part[1]
    a2 = part[2]
    for base in range(0, D * B, 2 * run):
        for start in range(base, base + run, block):
            lr0 = lr[start:start + block]
            li0 = li[start:start + block]
            lr1 = lr[start + run:start + run + block]
            li1 = li[start + run:start + run + block]
            pr0 = pr[start:start + block]
            pi0 = pi[start:start + block]
            pr1 = pr[start + run:start + run + block]
            pi1 = pi[start + run:start + run + block]
            for k in range(block):
                a0[k] += lr0[k] * pi0[k] - li0[k] * pr0[k] - lr1[k] * pi1[k] + li1[k] * pr1[k]
                a1[k] += lr0[k] * pr1[k] + li0[k] * pi1[k] - lr1[k] * pr0[k] - li1[k] * pi0[k]
                a2[k] += lr0[k] * pi1[k] - li0[k] * pr1[k] + lr1[k] * pi0[k] - li1[k] * pr0[k]
    for k in range(block):
        b = k % B
        acc[0, b] += a0[k]
        acc[1, b] += a1[k]
        acc[2, b] += a2[k]


@nb.njit(**_JIT)
def cross_terms(lam, psi, n, out):
    """Accumulate, per qubit q and sample b, what d<O>/dt needs from M_ab = sum_rest conj(lam_a) psi_b.

    For a generator P = n.sigma on qubit q (Hermitian, traceless) the adjoint
    method needs Im tr(P^T M) = n_z (Im M00 - Im M11) + n_x Im D - n_y Re D with
    D = M01 - conj(M10). ``out`` (n, 3, B) float64 receives [Im M00 - Im M11, Re D,
    Im D], so every single-qubit generator of a layer is read from one pass.
    """
    B = psi.shape[2]
    # block = B * 2^j divides every run s * B it is used on (s is a power of two too)
    widest = B
    while 2 * widest <= max(B, _LONG_RUN):
        widest *= 2
    part = np.empty((3, widest))
    for q in range(n):
        s = 1 << (n - 1 - q)
        if s * B >= 16:
            _cross_long(lam[0], lam[1], psi[0], psi[1], s, min(widest, s * B), part, out[q])
        else:
            _cross_short(lam[0], lam[1], psi[0], psi[1], s, out[q])


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


@nb.njit(**_JIT)
def fused_layer(theta, layer, n, enc, adjoint, out):
    """Kernel-layout matrices of one layer's blocks RZ(c) RY(b) RX(a) [RY(e)], or their adjoints.

    ``theta`` (Bm, P); ``enc`` (F, Be) encoding angles for qubits 0..F-1 of this
    layer (F = 0 for none); ``out`` (2, n, 2, 2, Bo) with Bo = max(Bm, Be).
    The closed form of RZ·RY·RX saves the three 2x2 products per block.
    """
    Bo = out.shape[4]
    Bm = theta.shape[0]
    F = enc.shape[0]
    for q in range(n):
        k = (layer * n + q) * 3
        for b in range(Bo):
            bm = 0 if Bm == 1 else b
            ha = 0.5 * theta[bm, k]
            hb = 0.5 * theta[bm, k + 1]
            hc = 0.5 * theta[bm, k + 2]
            ca, sa = np.cos(ha), np.sin(ha)
            cb, sb = np.cos(hb), np.sin(hb)
            ec, es = np.cos(hc), np.sin(hc)
            al, be, ga, de = cb * ca, sb * sa, sb * ca, cb * sa
            # W = [[w00, w01], [-conj(w01), conj(w00)]]
            w00r, w00i = ec * al + es * be, ec * be - es * al
            w01r, w01i = -ec * ga - es * de, es * ga - ec * de
            w10r, w10i = -w01r, w01i
            w11r, w11i = w00r, -w00i
            if q < F:
                be_ = 0 if enc.shape[1] == 1 else b
                ce, se = np.cos(0.5 * enc[q, be_]), np.sin(0.5 * enc[q, be_])
                # W @ RY(e): column 0 <- c0 ce + c1 se, column 1 <- c1 ce - c0 se
                w00r, w01r = w00r * ce + w01r * se, w01r * ce - w00r * se
                w00i, w01i = w00i * ce + w01i * se, w01i * ce - w00i * se
                w10r, w11r = w10r * ce + w11r * se, w11r * ce - w10r * se
                w10i, w11i = w10i * ce + w11i * se, w11i * ce - w10i * se
            if adjoint:
                w01r, w10r = w10r, w01r
                w01i, w10i = -w10i, -w01i
                w00i = -w00i
                w11i = -w11i
            out[0, q, 0, 0, b] = w00r
            out[1, q, 0, 0, b] = w00i
            out[0, q, 0, 1, b] = w01r
            out[1, q, 0, 1, b] = w01i
            out[0, q, 1, 0, b] = w10r
            out[1, q, 1, 0, b] = w10i
            out[0, q, 1, 1, b] = w11r
            out[1, q, 1, 1, b] = w11i


@nb.njit(**_JIT)
def gradients_from_overlaps(theta, cross, n, out_theta, out_enc):
    """Turn overlaps (K, L, n, 3, B) into d/d theta (K, B, P) and d/d(encoding angle) (K, L, n, B).

    The derivative of each block parameter is Im tr(P^T M) with P = m.sigma its
    generator moved to the block output (see ``ansatz.generator_axes`` for the
    axes m, written out here so the whole assembly is one compiled loop).
    """
    K, L = cross.shape[0], cross.shape[1]
    B = cross.shape[4]
    Bm = theta.shape[0]
    for layer in range(L):
        for q in range(n):
            k = (layer * n + q) * 3
            for b in range(B):
                bm = 0 if Bm == 1 else b
                ca, sa = np.cos(theta[bm, k]), np.sin(theta[bm, k])
                cb, sb = np.cos(theta[bm, k + 1]), np.sin(theta[bm, k + 1])
                cc, sc = np.cos(theta[bm, k + 2]), np.sin(theta[bm, k + 2])
                ex, ey, ez = sa * sb * cc - ca * sc, sa * sb * sc + ca * cc, sa * cb
                for j in range(K):
                    delta = cross[j, layer, q, 0, b]
                    re_d = cross[j, layer, q, 1, b]
                    im_d = cross[j, layer, q, 2, b]
                    # Im tr(P^T M) = m_z delta + m_x Im D - m_y Re D
                    out_theta[j, b, k] = -sb * delta + cc * cb * im_d - sc * cb * re_d
                    out_theta[j, b, k + 1] = -sc * im_d - cc * re_d
                    out_theta[j, b, k + 2] = delta
                    out_enc[j, layer, q, b] = ez * delta + ex * im_d - ey * re_d


@nb.njit(**_JIT)
def apply_two_qubit(st, q0, q1, n, m):
    """In place: apply the 4x4 matrix ``m`` (2, 4, 4, Bm) to qubits (q0, q1) of every state (q0 the
    high bit of the matrix index, as in cirq's unitary of a two-qubit operation)."""
    D = st.shape[1]
    B = st.shape[2]
    s0 = 1 << (n - 1 - q0)
    s1 = 1 << (n - 1 - q1)
    shared = m.shape[3] == 1
    re = st[0]
    im = st[1]
    idx = np.empty(4, dtype=np.int64)
    xr = np.empty(4)
    xi = np.empty(4)
    for i in range(D):
        if i & s0 or i & s1:
            continue
        idx[0] = i
        idx[1] = i | s1
        idx[2] = i | s0
        idx[3] = i | s0 | s1
        for b in range(B):
            bm = 0 if shared else b
            for a in range(4):
                xr[a] = re[idx[a], b]
                xi[a] = im[idx[a], b]
            for r in range(4):
                accr = 0.0
                acci = 0.0
                for c in range(4):
                    mr = m[0, r, c, bm]
                    mi = m[1, r, c, bm]
                    accr += mr * xr[c] - mi * xi[c]
                    acci += mr * xi[c] + mi * xr[c]
                re[idx[r], b] = accr
                im[idx[r], b] = acci
