"""Whole-circuit kernels for the common training case: one compiled call per direction.

The case: angle encoding without re-uploading, one parameter vector shared by the batch, exact
expectations of Z-products, float64. A training step of a small circuit (a PyTorch layer's
batch of 32 at 8 qubits) otherwise spends as much in Python between kernel calls as in the
kernels, and every extra state it touches pushes the caller's data out of the caches (torch's
own ops then run slower: touching 256 KiB more per step costs more than the touching itself).
Here a step's forward and its adjoint backward are one compiled call each, on states
``(2, D, B)`` as in ``statevector_kernels``, and the working set is the tape plus one diagonal:

* layer 0 (encoding RY and the first rotations) is a product state, built from its per-qubit
  factors, which are kept: the backward pass never needs that state;
* the CNOT network is a gather from one layer's state into the next layer's slot of the tape;
  the last one is never applied: the observables' signs are permuted instead
  (``<O> = sum_j sign(inv[j]) |psi_j|^2`` with ``inv`` the inverse map), so the tape holds the
  states after layers 1..L-1 only;
* the backward pass turns the last state into the cotangent in place (its overlaps are read
  first, from the cotangent's diagonal), then for each layer reads the overlaps with the saved
  state (one 2x2 matrix per qubit, as ``statevector_kernels.cross_terms``), undoes the layer and
  the entangler in place (cycle by cycle). Shared parameters need only batch sums of the
  overlaps, kept in registers; the encoding angles need layer 0's per sample, which the
  product structure gives in O(D) per sample;
* the kernels check their inputs are finite (a NaN or infinity returns False, the caller then
  raises), which costs less than NumPy passes over them.

``statevector.StatevectorBackend.expectations_vjp`` uses them when a circuit fits the case;
``tests/circuits/test_fused.py`` checks them against cirq's parameter shift and the general path.
"""
from __future__ import annotations

import numba as nb
import numpy as np

from . import statevector_kernels as kern

_JIT = dict(nogil=True, fastmath=True, cache=True)
# the exponent bits of a float64: all set for NaN and the infinities
_EXPONENT = 0x7FF0000000000000


def tape_slots(layers: int) -> int:
    """States a tape holds: those after layers 1..L-1, and room to build layer 0's (L > 1)."""
    return 1 if layers == 1 else max(2, layers - 1)


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
    """In place: the n single-qubit matrices ``m`` (n, 8) on states ``st`` (2, D, B)."""
    for q in range(n):
        kern._apply_shared(st, 1 << (n - 1 - q), m[q, 0], m[q, 1], m[q, 2], m[q, 3], m[q, 4], m[q, 5], m[q, 6],
                           m[q, 7])


@nb.njit(**_JIT)
def _gather(st, src, out):
    """``out[:, j] = st[:, src[j]]`` on states (2, D, B)."""
    B = st.shape[2]
    for j in range(src.shape[0]):
        k = src[j]
        for b in range(B):
            out[0, j, b] = st[0, k, b]
        for b in range(B):
            out[1, j, b] = st[1, k, b]


@nb.njit(**_JIT)
def _factors(theta, enc, n, v):
    """Per-qubit factors ``v`` (2, n, 2, B) of layer 0's product state: W_q RY(enc[b, q]) |0>
    (the RY only for q < F)."""
    B, F = enc.shape
    for q in range(n):
        w00r, w00i, w01r, w01i = _block(theta, 3 * q)
        for b in range(B):
            ce, se = 1.0, 0.0
            if q < F:
                ce, se = np.cos(0.5 * enc[b, q]), np.sin(0.5 * enc[b, q])
            # W RY(e)|0> = ce W[:, 0] + se W[:, 1], W[:, 0] = (w00, -conj(w01)), W[:, 1] = (w01, conj(w00))
            v[0, q, 0, b] = ce * w00r + se * w01r
            v[1, q, 0, b] = ce * w00i + se * w01i
            v[0, q, 1, b] = -ce * w01r + se * w00r
            v[1, q, 1, b] = ce * w01i - se * w00i


@nb.njit(**_JIT)
def _product_state(v, out):
    """Layer 0's state from its factors: the high and the low half of the qubits as two small
    product states, then their outer product."""
    n, B = v.shape[1], v.shape[3]
    nh = n // 2
    hi = np.empty((2, 1 << nh, B))
    lo = np.empty((2, 1 << (n - nh), B))
    kern.product_state(np.ascontiguousarray(v[:, :nh]), hi)
    kern.product_state(np.ascontiguousarray(v[:, nh:]), lo)
    size = lo.shape[1]
    for h in range(hi.shape[1]):
        for j in range(size):
            i = h * size + j
            for b in range(B):
                out[0, i, b] = hi[0, h, b] * lo[0, j, b] - hi[1, h, b] * lo[1, j, b]
            for b in range(B):
                out[1, i, b] = hi[0, h, b] * lo[1, j, b] + hi[1, h, b] * lo[0, j, b]


@nb.njit(**_JIT)
def _overlap_sums(lam, psi, n, out):
    """``out`` (n, 3) += the batch sums of ``statevector_kernels.cross_terms``' overlaps.

    Summing over the batch too makes each qubit one plain reduction over contiguous runs, kept
    in registers (cross_terms keeps per-sample partial sums in memory).
    """
    D, B = psi.shape[1], psi.shape[2]
    lr = lam[0].reshape(D * B)
    li = lam[1].reshape(D * B)
    pr = psi[0].reshape(D * B)
    pi = psi[1].reshape(D * B)
    for q in range(n):
        run = (1 << (n - 1 - q)) * B
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        for base in range(0, D * B, 2 * run):
            # slices indexed from 0: numba then knows the indices are not negative and LLVM vectorises
            lr0, li0, pr0, pi0 = lr[base:base + run], li[base:base + run], pr[base:base + run], pi[base:base + run]
            end = base + 2 * run
            lr1, li1, pr1, pi1 = lr[base + run:end], li[base + run:end], pr[base + run:end], pi[base + run:end]
            for k in range(run):
                a0 += lr0[k] * pi0[k] - li0[k] * pr0[k] - lr1[k] * pi1[k] + li1[k] * pr1[k]
                a1 += lr0[k] * pr1[k] + li0[k] * pi1[k] - lr1[k] * pr0[k] - li1[k] * pi0[k]
                a2 += lr0[k] * pi1[k] - li0[k] * pr1[k] + lr1[k] * pi0[k] - li1[k] * pr0[k]
        out[q, 0] += a0
        out[q, 1] += a1
        out[q, 2] += a2


@nb.njit(**_JIT)
def _product_overlaps(lam, v, out):
    """``out`` (n, 3, B) = ``statevector_kernels.cross_terms(lam, product state of v)``, in O(D) per sample.

    For a product state psi = (x)_r v_r the overlap of qubit q factorises: M_ac = R_q[a] v_q[c]
    with R_q[a] = sum_rest conj(lam[rest, q=a]) prod_{r != q} v_r[bit_r]. R_q comes from lam
    contracted with the other half of the qubits (one pass over lam for both halves), then with
    the factors of its own half (2^(n/2) terms).
    """
    n, B = v.shape[1], v.shape[3]
    nh = n // 2
    H, S = 1 << nh, 1 << (n - nh)
    hi = np.empty((2, H, B))
    lo = np.empty((2, S, B))
    kern.product_state(np.ascontiguousarray(v[:, :nh]), hi)
    kern.product_state(np.ascontiguousarray(v[:, nh:]), lo)
    # A[h] = sum_l conj(lam[h, l]) lo[l], C[l] = sum_h conj(lam[h, l]) hi[h]
    A = np.zeros((2, H, B))
    C = np.zeros((2, S, B))
    for h in range(H):
        ar, ai = A[0, h], A[1, h]
        hr, hi_ = hi[0, h], hi[1, h]
        for j in range(S):
            lr, li = lam[0, h * S + j], lam[1, h * S + j]
            orr, oi = lo[0, j], lo[1, j]
            cr, ci = C[0, j], C[1, j]
            for b in range(B):
                ar[b] += lr[b] * orr[b] + li[b] * oi[b]
                ai[b] += lr[b] * oi[b] - li[b] * orr[b]
            for b in range(B):
                cr[b] += lr[b] * hr[b] + li[b] * hi_[b]
                ci[b] += lr[b] * hi_[b] - li[b] * hr[b]
    R = np.empty((2, 2, B))
    er = np.empty(B)
    ei = np.empty(B)
    for q in range(n):
        env, first, k = (A, 0, nh) if q < nh else (C, nh, n - nh)
        R[:] = 0.0
        for h in range(1 << k):
            er[:] = env[0, h]
            ei[:] = env[1, h]
            for r in range(first, first + k):
                if r != q:
                    c = (h >> (k - 1 - (r - first))) & 1
                    for b in range(B):
                        vr, vi = v[0, r, c, b], v[1, r, c, b]
                        er[b], ei[b] = er[b] * vr - ei[b] * vi, er[b] * vi + ei[b] * vr
            a = (h >> (k - 1 - (q - first))) & 1
            for b in range(B):
                R[a, 0, b] += er[b]
                R[a, 1, b] += ei[b]
        for b in range(B):
            r0r, r0i, r1r, r1i = R[0, 0, b], R[0, 1, b], R[1, 0, b], R[1, 1, b]
            v0r, v0i, v1r, v1i = v[0, q, 0, b], v[1, q, 0, b], v[0, q, 1, b], v[1, q, 1, b]
            # [Im M00 - Im M11, Re(M01 - conj(M10)), Im(M01 - conj(M10))]
            out[q, 0, b] = (r0r * v0i + r0i * v0r) - (r1r * v1i + r1i * v1r)
            out[q, 1, b] = (r0r * v1r - r0i * v1i) - (r1r * v0r - r1i * v0i)
            out[q, 2, b] = (r0r * v1i + r0i * v1r) + (r1r * v0i + r1i * v0r)


@nb.njit(**_JIT)
def _diagonal_overlap_sums(d, psi, n, out):
    """``_overlap_sums(d * psi, psi)`` for a real diagonal ``d`` (D, B): with lam = d psi, Im M00 and
    Im M11 vanish and D = M01 - conj(M10) = sum (d0 - d1) conj(psi0) psi1, so lam is not needed."""
    D, B = psi.shape[1], psi.shape[2]
    dd = d.reshape(D * B)
    pr = psi[0].reshape(D * B)
    pi = psi[1].reshape(D * B)
    for q in range(n):
        run = (1 << (n - 1 - q)) * B
        a1 = 0.0
        a2 = 0.0
        for base in range(0, D * B, 2 * run):
            end = base + 2 * run
            d0, pr0, pi0 = dd[base:base + run], pr[base:base + run], pi[base:base + run]
            d1, pr1, pi1 = dd[base + run:end], pr[base + run:end], pi[base + run:end]
            for k in range(run):
                w = d0[k] - d1[k]
                a1 += w * (pr0[k] * pr1[k] + pi0[k] * pi1[k])
                a2 += w * (pr0[k] * pi1[k] - pi0[k] * pr1[k])
        out[q, 1] += a1
        out[q, 2] += a2


@nb.njit(**_JIT)
def _permute(st, perm, leaders, row):
    """In place: ``st[:, j] = st[:, perm[j]]`` (2, D, B), one cycle of the permutation at a time
    (``leaders`` holds one index of each cycle longer than 1); ``row`` (2, B) is scratch."""
    B = st.shape[2]
    for c in range(leaders.shape[0]):
        j0 = leaders[c]
        for b in range(B):
            row[0, b] = st[0, j0, b]
            row[1, b] = st[1, j0, b]
        j = j0
        k = perm[j]
        while k != j0:
            for b in range(B):
                st[0, j, b] = st[0, k, b]
                st[1, j, b] = st[1, k, b]
            j = k
            k = perm[j]
        for b in range(B):
            st[0, j, b] = row[0, b]
            st[1, j, b] = row[1, b]


def cycle_leaders(perm: np.ndarray) -> np.ndarray:
    """The smallest index of every cycle of ``perm`` longer than 1 (for ``_permute``)."""
    seen = np.zeros(perm.size, dtype=bool)
    leaders = []
    for j in range(perm.size):
        if not seen[j] and perm[j] != j:
            leaders.append(j)
            k = j
            while not seen[k]:
                seen[k] = True
                k = perm[k]
    return np.array(leaders, dtype=np.int64)


@nb.njit(**_JIT)
def _expectations(psi, signs, acc):
    """``acc`` (K, B) += sum_j signs[j, k] |psi_jb|^2, four rows at a time (fewer passes over acc).

    Plain loops, not np.dot (twice as fast here): BLAS's own threads compete with the caller's,
    and stalled an event loop beside a trainer."""
    D, B = psi.shape[1], psi.shape[2]
    K = signs.shape[1]
    p = np.empty((4, B))
    for j in range(0, D, 4):
        rows = min(4, D - j)
        p[:] = 0.0
        for r in range(rows):
            for b in range(B):
                p[r, b] = psi[0, j + r, b] * psi[0, j + r, b] + psi[1, j + r, b] * psi[1, j + r, b]
        for k in range(K):
            s0 = signs[j, k]
            s1 = signs[j + 1, k] if rows > 1 else 0.0
            s2 = signs[j + 2, k] if rows > 2 else 0.0
            s3 = signs[j + 3, k] if rows > 3 else 0.0
            a, p0, p1, p2, p3 = acc[k], p[0], p[1], p[2], p[3]
            for b in range(B):
                a[b] += s0 * p0[b] + s1 * p1[b] + s2 * p2[b] + s3 * p3[b]


@nb.njit(**_JIT)
def _weighted_signs(signs, g, out):
    """``out`` (D, B) += sum_k signs[j, k] g[k, b], four observables at a time (plain loops, as above)."""
    D, K = signs.shape
    B = g.shape[1]
    for j in range(D):
        row = out[j]
        for k in range(0, K, 4):
            m = min(4, K - k)
            s0 = signs[j, k]
            s1 = signs[j, k + 1] if m > 1 else 0.0
            s2 = signs[j, k + 2] if m > 2 else 0.0
            s3 = signs[j, k + 3] if m > 3 else 0.0
            g0 = g[k]
            g1 = g[k + 1] if m > 1 else g0
            g2 = g[k + 2] if m > 2 else g0
            g3 = g[k + 3] if m > 3 else g0
            for b in range(B):
                row[b] += s0 * g0[b] + s1 * g1[b] + s2 * g2[b] + s3 * g3[b]


@nb.njit(**_JIT)
def _finite(a):
    """No NaN or infinity in ``a``, read from the exponent bits: with fast math, LLVM may assume a
    float comparison never sees one and drop the test."""
    for bits in np.ascontiguousarray(a).ravel().view(np.int64):
        if bits & _EXPONENT == _EXPONENT:
            return False
    return True


@nb.njit(**_JIT)
def _slot(layer, T):
    """Tape slot of the state after ``layer``'s rotations (layer 0's shares a later one)."""
    if layer > 0:
        return layer - 1
    return T - 1


@nb.njit(**_JIT)
def forward(theta, enc, src, signs, tape, v, out):
    """Expectations ``out`` (B, K) of the observables' ``signs`` (D, K), given in the last layer's frame.

    ``theta`` (P,), ``enc`` (B, F) encoding angles, ``src`` (D,) the CNOT network's gather map.
    Fills ``v`` (2, n, 2, B) with layer 0's factors and ``tape`` (tape_slots(L), 2, D, B) with
    the states the backward pass needs. Returns False, having computed nothing, if ``theta`` or
    ``enc`` hold a NaN or an infinity (checked here: cheaper than NumPy passes in a training step).
    """
    if not (_finite(theta) and _finite(enc)):
        return False
    T, _, D, B = tape.shape
    L = theta.shape[0] // (3 * v.shape[1])
    n = v.shape[1]
    K = out.shape[1]
    mats = _layer_matrices(theta, n, L, False)
    _factors(theta, enc, n, v)
    _product_state(v, tape[_slot(0, T)])
    for layer in range(1, L):
        _gather(tape[_slot(layer - 1, T)], src, tape[_slot(layer, T)])
        _apply(tape[_slot(layer, T)], n, mats[layer])
    last = tape[_slot(L - 1, T)]
    acc = np.zeros((K, B))
    _expectations(last, signs, acc)
    for b in range(B):
        for k in range(K):
            out[b, k] = acc[k, b]
    return True


@nb.njit(**_JIT)
def backward(theta, inv, leaders, signs, tape, v, grad_out, g_theta, g_enc):
    """Adjoint pass for cotangent ``grad_out`` (B, K) of ``forward``'s expectations; consumes the tape.

    ``inv`` (D,) is the inverse of the entangler's gather map, ``leaders`` one index of each of its
    cycles (``cycle_leaders``), ``signs`` (D, K) as for ``forward``.

    Adds d/d theta summed over the batch to ``g_theta`` (P,) and writes d/d(encoding angle)
    to ``g_enc`` (B, F). Returns False, leaving the tape as it is, if ``grad_out`` holds a NaN or
    an infinity.
    """
    if not _finite(grad_out):
        return False
    T, _, D, B = tape.shape
    n = v.shape[1]
    L = theta.shape[0] // (3 * n)
    F = g_enc.shape[1]
    adj = _layer_matrices(theta, n, L, True)
    sums = np.zeros((L, n, 3))
    cross = np.zeros((n, 3, B))                 # layer 0's overlaps, per sample
    # the cotangent's observable sum_k g_k O_k: a real diagonal (D, B) in the last layer's frame
    diag = np.zeros((D, B))
    _weighted_signs(signs, np.ascontiguousarray(grad_out.T), diag)
    lam = tape[_slot(L - 1, T)]
    if L > 1:
        _diagonal_overlap_sums(diag, lam, n, sums[L - 1])
    kern.weight_diagonal(lam, diag, lam)        # the last state becomes the cotangent, in place
    row = np.empty((2, B))
    for layer in range(L - 1, 0, -1):
        if layer < L - 1:
            _overlap_sums(lam, tape[_slot(layer, T)], n, sums[layer])
        _apply(lam, n, adj[layer])
        _permute(lam, inv, leaders, row)
    _product_overlaps(lam, v, cross)
    for q in range(n):
        for t in range(3):
            sums[0, q, t] = cross[q, t].sum()
    for layer in range(L):
        for q in range(n):
            k = (layer * n + q) * 3
            ca, sa = np.cos(theta[k]), np.sin(theta[k])
            cb, sb = np.cos(theta[k + 1]), np.sin(theta[k + 1])
            cc, sc = np.cos(theta[k + 2]), np.sin(theta[k + 2])
            delta, re_d, im_d = sums[layer, q, 0], sums[layer, q, 1], sums[layer, q, 2]
            g_theta[k] += -sb * delta + cc * cb * im_d - sc * cb * re_d
            g_theta[k + 1] += -sc * im_d - cc * re_d
            g_theta[k + 2] += delta
            if layer == 0 and q < F:
                # the encoding RY's generator moved to the block's output (ansatz.generator_axes)
                ex, ey, ez = sa * sb * cc - ca * sc, sa * sb * sc + ca * cc, sa * cb
                for b in range(B):
                    g_enc[b, q] = ez * cross[q, 0, b] + ex * cross[q, 2, b] - ey * cross[q, 1, b]
    return True
