"""Batched state-vector simulator of ``CircuitSpec`` circuits with adjoint gradients.

How a call runs:

* each (layer, qubit) block RZ·RY·RX (with its RY encoding gate, if any) is
  fused into one 2x2 matrix; a CNOT entangler is one permutation of basis states;
* the first layer on |0...0> with angle encoding is a product state, built
  directly; amplitude encoding builds its state directly from the gate angles;
* the batch is split into chunks run on an executor (kernels release the GIL),
  which also bounds working memory (``max_memory_bytes``). The executor is
  passed in, by default the process's compute pool from ``qstore.runtime``;
  the backend owns no threads.

A training step's ``expectations_vjp`` in the common case (angle encoding once, one parameter
vector for the batch, float64) runs through ``fused_kernels`` instead: one compiled call per
direction and a smaller working set.

The adjoint gradient keeps the state after every layer, sends the cotangent
``lambda = sum_k g_k O_k psi`` back through the circuit, and reads all 3n (or 4n
with encoding gates) derivatives of a layer from one 2x2 overlap per qubit
(``statevector_kernels.cross_terms``): O(gates) work per sample.
"""
from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from qstore import runtime
from qstore.errors import error

from . import fused_kernels as fused
from . import statevector_kernels as kern
from .ansatz import entangler_permutation, generator_axes, pauli_matrix
from .backend import Backend, Pullback, check_execute_args, check_shots
from .metric import METRIC_KINDS, fubini_study_metric
from .observables import ObservablesLike, ZObservables, counts_from_histogram, z_observables
from .spec import CircuitSpec

log = logging.getLogger(__name__)

DEFAULT_MAX_MEMORY_BYTES = 2 << 30
# Chunks of about 512 KiB per state keep a chunk's working states near L2 and
# still give the vector units runs of whole batches (measured best: 64 samples
# at 8 qubits, 8-16 at 12; see the gradients section of benchmarks/README.md).
_CHUNK_BYTES = 1 << 19
_MAX_CHUNK = 64
_MIN_CHUNK = 8
_MIN_SPLIT = 1 << 14
_DTYPES = {np.dtype(np.complex128): np.float64, np.dtype(np.complex64): np.float32}


def _split(m: np.ndarray, real: type) -> np.ndarray:
    """Complex (n, Bm, 2, 2) -> kernel layout (2, n, 2, 2, Bm)."""
    return np.ascontiguousarray(np.stack([m.real, m.imag]).transpose(0, 1, 3, 4, 2), dtype=real)


def _cols(a: np.ndarray, b0: int, b1: int) -> np.ndarray:
    """Batch slice of a kernel array whose last axis is 1 (shared) or B."""
    return a if a.shape[-1] == 1 else np.ascontiguousarray(a[..., b0:b1])


@dataclass
class _Program:
    """One call's circuit, compiled for the kernels."""

    spec: CircuitSpec
    real: type
    batch: int
    theta: np.ndarray           # (Bm, P) with Bm in {1, B}
    angles: np.ndarray          # (B, n_inputs)
    layer_mats: list[np.ndarray]  # kernel layout per layer (2, n, 2, 2, Bm_l)
    adjoint_mats: list[np.ndarray]
    first_columns: np.ndarray | None  # product state factors (2, n, 2, Bm) for angle encoding
    src: np.ndarray
    inv_src: np.ndarray

    @classmethod
    def build(cls, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, real: type) -> _Program:
        n, L, B = spec.n_qubits, spec.layers, angles.shape[0]
        theta2 = np.ascontiguousarray(theta[None, :] if theta.ndim == 1 else theta)
        uploads = 0
        if spec.encoding == "angle":
            uploads = L if spec.reupload else 1
            enc = angles.reshape(B, uploads, spec.n_features).transpose(1, 2, 0).copy()   # (U, F, B)
        no_enc = np.zeros((0, 1))
        layer_mats, adjoint = [], []
        for layer in range(L):
            e = enc[layer] if layer < uploads else no_enc
            width = max(theta2.shape[0], e.shape[1])
            for out, is_adjoint in ((layer_mats, False), (adjoint, True)):
                m = np.empty((2, n, 2, 2, width))
                kern.fused_layer(theta2, layer, n, e, is_adjoint, m)
                out.append(m.astype(real, copy=False))
        first = None
        if spec.encoding == "angle":
            first = np.ascontiguousarray(layer_mats[0][:, :, :, 0, :])                  # W|0>: (2, n, 2, Bm)
        src, inv = _permutations(n, tuple(spec.pairs))
        return cls(spec, real, B, theta2, angles, layer_mats, adjoint, first, src, inv)

    def initial(self, b0: int, b1: int) -> np.ndarray:
        st = np.empty((2, self.spec.dim, b1 - b0), dtype=self.real)
        if self.first_columns is not None:
            kern.product_state(_cols(self.first_columns, b0, b1), st)
        else:
            st[0] = self.spec.encoder.state(self.angles[b0:b1]).T
            st[1] = 0.0
            kern.apply_layer(st, _cols(self.layer_mats[0], b0, b1))
        return st

    def forward(self, b0: int, b1: int, keep: bool) -> tuple[np.ndarray, list[np.ndarray]]:
        """Final states of rows b0:b1, and (if ``keep``) the state after each layer's rotations."""
        st = self.initial(b0, b1)
        tmp = np.empty_like(st)
        saved = []
        for layer in range(self.spec.layers):
            if layer > 0:
                kern.apply_layer(st, _cols(self.layer_mats[layer], b0, b1))
            if keep:
                # Permuting into a fresh array leaves this layer's state untouched for the backward pass.
                saved.append(st)
                tmp = np.empty_like(st)
            kern.permute(st, self.src, tmp)
            st, tmp = tmp, st
        return st, saved

    def backward(self, final: np.ndarray, saved: list[np.ndarray], diag: np.ndarray,
                 b0: int, b1: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Overlaps (L, n, 3, Bc) for cotangent ``diag * final``; plus 2 Re(lambda_0) for amplitude."""
        n, L = self.spec.n_qubits, self.spec.layers
        lam = np.empty_like(final)
        kern.weight_diagonal(final, np.ascontiguousarray(diag, dtype=self.real), lam)
        tmp = np.empty_like(lam)
        cross = np.zeros((L, n, 3, b1 - b0))
        dense_start = self.first_columns is None
        for layer in range(L - 1, -1, -1):
            kern.permute(lam, self.inv_src, tmp)
            lam, tmp = tmp, lam
            kern.cross_terms(lam, saved[layer], n, cross[layer])
            if layer > 0 or dense_start:
                kern.apply_layer(lam, _cols(self.adjoint_mats[layer], b0, b1))
        start = 2.0 * lam[0].astype(np.float64) if dense_start else None
        return cross, start


class StatevectorBackend(Backend):
    """Exact (or shot-sampled) batched simulation; adjoint ``vjp`` and ``jacobian``.

    Args:
        dtype: ``np.complex128`` (default) or ``np.complex64``.
        shots: None for exact expectations, else estimates from this many shots.
        seed: seeds the shot sampler.
        max_memory_bytes: working-memory bound per call; a circuit whose single
            sample does not fit is refused (``too_many_qubits``) before allocating.
        threads: batch chunks run at once (default: the executor's workers).
        chunk_size: samples per chunk (default: sized to the cache, 8-64).
        executor: runs the chunks (default: ``qstore.runtime.compute_pool()``).
    """

    name = "statevector"
    supports_adjoint = True
    supports_metric = True

    def __init__(self, dtype: type = np.complex128, shots: int | None = None, seed: int | None = None,
                 max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES, threads: int | None = None,
                 chunk_size: int | None = None, executor: Executor | None = None):
        if np.dtype(dtype) not in _DTYPES:
            raise error("invalid_parameters", f"dtype must be complex128 or complex64, got {dtype!r}")
        self.dtype = np.dtype(dtype)
        self.real = _DTYPES[self.dtype]
        self.shots = None if shots is None else check_shots(shots)
        self.max_memory_bytes = int(max_memory_bytes)
        self.threads = max(1, threads or runtime.config().compute_threads)
        self.chunk_size = None if chunk_size is None else max(1, int(chunk_size))
        self._rng = np.random.default_rng(seed)
        self._executor = executor

    def __getstate__(self) -> dict:
        # An executor cannot cross a process boundary; the receiving process uses its own pool.
        return {**self.__dict__, "_executor": None}

    # -- plumbing ------------------------------------------------------------------
    def _chunks(self, spec: CircuitSpec, batch: int, states_per_sample: int) -> list[tuple[int, int]]:
        state_bytes = spec.dim * 2 * np.dtype(self.real).itemsize
        per_sample = state_bytes * states_per_sample + spec.dim * 16
        if per_sample > self.max_memory_bytes:
            raise error("too_many_qubits",
                        f"{spec.n_qubits} qubits need {per_sample / 2**20:.0f} MiB per sample here, over the "
                        f"{self.max_memory_bytes / 2**20:.0f} MiB limit (max_memory_bytes)")
        size = self.chunk_size or min(_MAX_CHUNK, max(_MIN_CHUNK, _CHUNK_BYTES // state_bytes))
        # Split mid-size batches across the threads, but not below _MIN_SPLIT amplitudes a chunk:
        # smaller chunks cost more in thread hand-offs than they gain (a batch of 32 at 8 qubits).
        size = min(size, max(_MIN_CHUNK, _MIN_SPLIT // spec.dim, -(-batch // self.threads)))
        size = max(1, min(size, self.max_memory_bytes // (per_sample * self.threads)))
        log.debug("%d samples of %d qubits in chunks of %d on %d threads", batch, spec.n_qubits, size, self.threads)
        return [(b0, min(batch, b0 + size)) for b0 in range(0, batch, size)]

    def _map(self, fn, chunks: list[tuple[int, int]]) -> list:
        if len(chunks) == 1 or self.threads == 1:
            return [fn(b0, b1) for b0, b1 in chunks]
        executor = self._executor or runtime.compute_pool()
        return list(executor.map(lambda c: fn(*c), chunks))

    def _program(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, states_per_sample: int,
                 real: type | None = None) -> tuple[_Program, list[tuple[int, int]]]:
        """Check memory first, then compile: a refused circuit allocates nothing."""
        chunks = self._chunks(spec, angles.shape[0], states_per_sample)
        return _Program.build(spec, angles, theta, real or self.real), chunks

    def _probabilities(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """(B, 2^n) Born probabilities."""
        prog, chunks = self._program(spec, angles, theta, 3)

        def run(b0: int, b1: int) -> np.ndarray:
            final, _ = prog.forward(b0, b1, keep=False)
            probs = np.empty(final.shape[1:])
            kern.probabilities(final, probs)
            return probs.T

        return np.concatenate(self._map(run, chunks))

    # -- Backend -------------------------------------------------------------------
    def execute(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray,
                observables: ZObservables) -> np.ndarray:
        angles, theta = check_execute_args(spec, angles, theta)
        probs = self._probabilities(spec, angles, theta)
        if self.shots is not None:
            probs = self._rng.multinomial(self.shots, _normalised(probs)) / self.shots
        return observables.from_probabilities(probs)

    def counts(self, spec: CircuitSpec, angles: np.ndarray, theta: np.ndarray, shots: int,
               seed: int | None = None) -> list[dict[str, int]]:
        angles, theta = check_execute_args(spec, angles, theta)
        rng = np.random.default_rng(seed) if seed is not None else self._rng
        hist = rng.multinomial(check_shots(shots), _normalised(self._probabilities(spec, angles, theta)))
        return [counts_from_histogram(h, spec.n_qubits) for h in hist]

    # -- exact states ----------------------------------------------------------------
    def states(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Final state vectors (B, 2^n) in ``dtype`` (qubit 0 most significant)."""
        X, theta, _ = self.prepare(spec, X, theta, None)
        self._check_output(spec, X.shape[0], 1)
        prog, chunks = self._program(spec, spec.encoder.angles(X), theta, 2)

        def run(b0: int, b1: int) -> np.ndarray:
            final, _ = prog.forward(b0, b1, keep=False)
            return (final[0] + 1j * final[1]).T.astype(self.dtype)

        return np.concatenate(self._map(run, chunks))

    def state_derivatives(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray
                          ) -> tuple[np.ndarray, np.ndarray]:
        """(states (B, 2^n), d state / d theta_k (B, P, 2^n)), complex128."""
        X, theta, _ = self.prepare(spec, X, theta, None)
        B, n, L, P = X.shape[0], spec.n_qubits, spec.layers, spec.n_params
        self._check_output(spec, B, P + 1)
        prog, chunks = self._program(spec, spec.encoder.angles(X), theta, L + 4 + 6 * n + P, np.float64)
        gens = -0.5j * pauli_matrix(generator_axes(prog.theta, n, L)[..., :3, :])  # (L, n, Bm, 3, 2, 2)

        def run(b0: int, b1: int) -> tuple[np.ndarray, np.ndarray]:
            final, saved = prog.forward(b0, b1, keep=True)
            bc = b1 - b0
            derivs = np.empty((bc, P, spec.dim), dtype=np.complex128)
            for layer in range(L):
                # All 3n derivative states of a layer travel as one wider batch.
                stack = np.empty((2, spec.dim, 3 * n, bc))
                for q in range(n):
                    for axis in range(3):
                        d = saved[layer].copy()
                        g = _cols(_split(gens[layer, q, :, axis][None], np.float64)[:, 0], b0, b1)
                        kern.apply_one_qubit(d, q, n, np.ascontiguousarray(g))
                        stack[:, :, 3 * q + axis, :] = d
                st = stack.reshape(2, spec.dim, 3 * n * bc)
                out = np.empty_like(st)
                kern.permute(st, prog.src, out)
                st, out = out, st
                for later in range(layer + 1, L):
                    kern.apply_layer(st, _tile(_cols(prog.layer_mats[later], b0, b1), 3 * n))
                    kern.permute(st, prog.src, out)
                    st, out = out, st
                block = (st[0] + 1j * st[1]).reshape(spec.dim, 3 * n, bc).transpose(2, 1, 0)
                derivs[:, layer * 3 * n:(layer + 1) * 3 * n] = block
            return (final[0] + 1j * final[1]).T, derivs

        parts = self._map(run, chunks)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def metric_tensor(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, kind: str = "full") -> np.ndarray:
        """Fubini–Study metric g_ij = Re(<d_i psi|d_j psi> - <d_i psi|psi><psi|d_j psi>) per sample.

        ``kind``: ``full`` (B, P, P); ``block`` keeps only the 3n x 3n block of
        each layer; ``diag`` only the diagonal (both still returned as (B, P, P)).
        """
        if kind not in METRIC_KINDS:
            raise error("invalid_parameters", f"metric kind must be one of {METRIC_KINDS}, got {kind!r}")
        psi, derivs = self.state_derivatives(spec, X, theta)
        return fubini_study_metric(psi, derivs, kind, block=3 * spec.n_qubits)

    # -- adjoint gradients ---------------------------------------------------------------
    def vjp(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, grad_out: np.ndarray,
            observables: ObservablesLike | ZObservables | None = None, inputs: bool = True
            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Adjoint vector-Jacobian product of ``expectations``.

        For loss gradient ``grad_out`` (B, n_obs) returns ``(grad_theta, grad_X)``:
        grad_theta is (P,) summed over the batch when theta is shared (P,), or
        (B, P) when theta is per sample; grad_X is (B, F), or None if not ``inputs``.
        """
        X, theta, obs = self.prepare(spec, X, theta, observables)
        grad_out = _check_cotangent(grad_out, (X.shape[0], len(obs)))
        g_theta, g_x = self._adjoint(spec, X, theta, obs, grad_out[None], inputs)
        return (g_theta[0] if theta.ndim == 2 else g_theta[0].sum(axis=0)), (g_x[0] if inputs else None)

    def jacobian(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
                 observables: ObservablesLike | ZObservables | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Per-sample Jacobians: d<O_k>/d theta (B, n_obs, P) and d<O_k>/dX (B, n_obs, F)."""
        X, theta, obs = self.prepare(spec, X, theta, observables)
        eye = np.broadcast_to(np.eye(len(obs))[:, None, :], (len(obs), X.shape[0], len(obs)))
        g_theta, g_x = self._adjoint(spec, X, theta, obs, eye, True)
        return g_theta.transpose(1, 0, 2), g_x.transpose(1, 0, 2)

    def expectations_vjp(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
                         observables: ObservablesLike | ZObservables | None = None, inputs: bool = True
                         ) -> tuple[np.ndarray, Pullback]:
        """``expectations`` and their adjoint ``vjp`` from one forward pass: the pullback reuses the
        compiled circuit and the states saved on the way (a training step's forward, then backward).

        Shot-sampled expectations, or a batch whose saved states would not fit ``max_memory_bytes``,
        fall back to a separate ``vjp`` call.
        """
        fused = self._fused_expectations_vjp(spec, X, theta, observables, inputs)
        if fused is None:
            X, theta, obs = self.prepare(spec, X, theta, observables)
            # inputs prepare converted (lists, a single row, ...) may fit the fused kernels now
            fused = self._fused_expectations_vjp(spec, X, theta, obs, inputs)
        if fused is not None:
            return fused
        L = spec.layers
        tape_bytes = X.shape[0] * (L + 2) * spec.dim * 2 * np.dtype(self.real).itemsize
        if self.shots is not None or tape_bytes > self.max_memory_bytes:
            return super().expectations_vjp(spec, X, theta, obs, inputs)
        prog, chunks = self._program(spec, spec.encoder.angles(X), theta, L + 4)

        def run(b0: int, b1: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
            final, saved = prog.forward(b0, b1, keep=True)
            probs = np.empty(final.shape[1:])
            kern.probabilities(final, probs)
            return final, saved, probs.T

        tape = dict(zip(chunks, self._map(run, chunks)))
        values = obs.from_probabilities(np.concatenate([t[2] for t in tape.values()]))

        def pullback(grad_out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            grad_out = _check_cotangent(grad_out, values.shape)

            def back(b0: int, b1: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
                final, saved, _ = tape[b0, b1]
                return [prog.backward(final, saved, obs.diagonal(grad_out[b0:b1]), b0, b1)]

            parts = self._map(back, chunks)
            g_theta, g_x = self._gradients(spec, prog, X, parts, 1, inputs)
            return (g_theta[0] if theta.ndim == 2 else g_theta[0].sum(axis=0)), (g_x[0] if g_x is not None else None)

        return values, pullback

    def _fused_expectations_vjp(self, spec: CircuitSpec, X: Any, theta: Any,
                                observables: ObservablesLike | ZObservables | None, inputs: bool
                                ) -> tuple[np.ndarray, Pullback] | None:
        """``expectations_vjp`` through ``fused_kernels``, one compiled call per chunk and direction;
        None for a call outside their case (``_fits_fused``) or with values that are not finite:
        the general path then runs, and refuses bad input with the usual errors.

        Float64 arrays of the right shapes go to the kernels unchecked, which test finiteness
        themselves: a training step's validation otherwise costs more than its simulation.
        """
        if not (type(X) is np.ndarray and X.dtype == np.float64 and X.ndim == 2 and X.shape[0] > 0
                and X.shape[1] == spec.n_features and type(theta) is np.ndarray and theta.dtype == np.float64
                and theta.shape == (spec.n_params,) and _fits_fused(spec, theta, self.real) and self.shots is None):
            return None
        B = X.shape[0]
        if B * (spec.layers + 2) * spec.dim * 16 > self.max_memory_bytes:
            return None                         # the general path falls back to a separate vjp
        obs = spec.observables if observables is None else z_observables(observables, spec.n_qubits)
        # _chunks never splits a batch this small (a training step's): skip its arithmetic
        small = self.chunk_size is None and B * spec.dim <= _MIN_SPLIT
        chunks = [(0, B)] if small else self._chunks(spec, B, spec.layers + 4)
        X, theta = np.ascontiguousarray(X), np.ascontiguousarray(theta)
        angles = spec.encoder.angles(X)
        maps = _fused_maps(obs, tuple(spec.pairs))
        tapes = self._map(lambda b0, b1: _FusedTape(spec, theta, angles[b0:b1], *maps), chunks)
        if not all(t.full for t in tapes):
            return None
        values = tapes[0].values if len(tapes) == 1 else np.concatenate([t.values for t in tapes])

        def pullback(grad_out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            if not (type(grad_out) is np.ndarray and grad_out.dtype == np.float64 and grad_out.shape == values.shape):
                grad_out = _check_cotangent(grad_out, values.shape)
            grad_out = np.ascontiguousarray(grad_out)
            parts = self._map(lambda b0, b1: tapes[chunks.index((b0, b1))].back(grad_out[b0:b1]), chunks)
            if any(p is None for p in parts):
                _check_cotangent(grad_out, values.shape)          # not finite: raises
            g_theta = parts[0][0] if len(parts) == 1 else np.sum([p[0] for p in parts], axis=0)
            g_angles = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
            return g_theta, (spec.encoder.angles_vjp(X, g_angles) if inputs else None)

        return values, pullback

    def _adjoint(self, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, obs: ZObservables,
                 cotangents: np.ndarray, inputs: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Gradients for K cotangents (K, B, n_obs) from one forward pass: (K, B, P), (K, B, F)."""
        prog, chunks = self._program(spec, spec.encoder.angles(X), theta, spec.layers + 4)

        def run(b0: int, b1: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
            final, saved = prog.forward(b0, b1, keep=True)
            return [prog.backward(final, saved, obs.diagonal(c[b0:b1]), b0, b1) for c in cotangents]

        return self._gradients(spec, prog, X, self._map(run, chunks), cotangents.shape[0], inputs)

    @staticmethod
    def _gradients(spec: CircuitSpec, prog: _Program, X: np.ndarray,
                   parts: list[list[tuple[np.ndarray, np.ndarray | None]]], K: int, inputs: bool
                   ) -> tuple[np.ndarray, np.ndarray | None]:
        """Per-chunk backward results [chunk][cotangent] -> (K, B, P), (K, B, F) or None."""
        n, L, B = spec.n_qubits, spec.layers, X.shape[0]
        cross = np.ascontiguousarray(np.stack([np.concatenate([p[k][0] for p in parts], axis=-1)
                                               for k in range(K)]))                   # (K, L, n, 3, B)
        g_theta = np.empty((K, B, spec.n_params))
        g_enc = np.empty((K, L, n, B))
        kern.gradients_from_overlaps(prog.theta, cross, n, g_theta, g_enc)
        if not inputs:
            return g_theta, None
        if spec.encoding == "angle":
            uploads, F = (L if spec.reupload else 1), spec.n_features
            g_angles = g_enc[:, :uploads, :F, :].transpose(0, 3, 1, 2).reshape(K, B, uploads * F)
            return g_theta, np.stack([spec.encoder.angles_vjp(X, g) for g in g_angles])
        start = np.stack([np.concatenate([p[k][1] for p in parts], axis=1).T for k in range(K)])  # type: ignore[misc]
        psi0 = spec.encoder.normalised(X)                           # (B, D)
        norm = np.linalg.norm(spec.encoder.padded(X), axis=1)[None, :, None]
        radial = np.einsum("kbd,bd->kb", start, psi0)[..., None] * psi0[None]
        return g_theta, ((start - radial) / norm)[..., : spec.n_features]

    def _check_output(self, spec: CircuitSpec, batch: int, per_sample_states: int) -> None:
        need = batch * per_sample_states * spec.dim * 16
        if need > self.max_memory_bytes:
            raise error("too_many_qubits",
                        f"the result needs {need / 2**20:.0f} MiB, over the {self.max_memory_bytes / 2**20:.0f}"
                        f" MiB limit (max_memory_bytes); use fewer qubits or a smaller batch")


@lru_cache(maxsize=64)
def _permutations(n_qubits: int, pairs: tuple[tuple[int, int], ...]) -> tuple[np.ndarray, np.ndarray]:
    """The entangler's basis permutation and its inverse (cached: every call of a spec reuses them)."""
    src = entangler_permutation(n_qubits, pairs)
    inv = np.empty_like(src)
    inv[src] = np.arange(src.size)
    src.setflags(write=False)
    inv.setflags(write=False)
    return src, inv


class _FusedTape:
    """One chunk's forward pass through ``fused_kernels``, kept for its backward pass."""

    def __init__(self, spec: CircuitSpec, theta: np.ndarray, angles: np.ndarray, src: np.ndarray, inv: np.ndarray,
                 leaders: np.ndarray, signs: np.ndarray):
        self.theta, self.angles, self.src, self.inv, self.leaders, self.signs = theta, angles, src, inv, leaders, signs
        B = angles.shape[0]
        self.states = np.empty((fused.tape_slots(spec.layers), 2, spec.dim, B))
        self.factors = np.empty((2, spec.n_qubits, 2, B))
        self.values = np.empty((B, signs.shape[1]))
        self.fill()

    def fill(self) -> None:
        """Run the forward pass; ``full`` is False if the inputs were not finite."""
        self.full = fused.forward(self.theta, self.angles, self.src, self.signs, self.states, self.factors,
                                  self.values)

    def back(self, grad_out: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(d/d theta summed over the chunk (P,), d/d encoding angles (B, F)); None, with the tape
        kept, if ``grad_out`` is not finite."""
        if not self.full:                   # a second pullback: the first one consumed the tape
            self.values = np.empty_like(self.values)      # the first values went out (torch shares them)
            self.fill()
        g_theta, g_enc = np.zeros(self.theta.shape[0]), np.empty(self.angles.shape)
        if not fused.backward(self.theta, self.inv, self.leaders, self.signs, self.states, self.factors, grad_out,
                              g_theta, g_enc):
            return None
        self.full = False
        return g_theta, g_enc


def _fits_fused(spec: CircuitSpec, theta: np.ndarray, real: type) -> bool:
    """The case ``fused_kernels`` covers: angle encoding once, shared parameters, float64 states."""
    return spec.encoding == "angle" and not spec.reupload and theta.ndim == 1 and real is np.float64


@lru_cache(maxsize=64)
def _fused_maps(obs: ZObservables, pairs: tuple[tuple[int, int], ...]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The entangler's gather map, its inverse and the inverse's cycle leaders, and the observables'
    signs (2^n, K) in the frame before the last entangler (``fused_kernels.forward`` never applies it)."""
    src, inv = _permutations(obs.n_qubits, pairs)
    leaders = fused.cycle_leaders(inv)
    signs = np.ascontiguousarray(obs.signs[:, inv].T)
    for a in (leaders, signs):
        a.setflags(write=False)
    return src, inv, leaders, signs


def _check_cotangent(grad_out: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    grad_out = np.asarray(grad_out, dtype=np.float64)
    if grad_out.shape != shape or not np.isfinite(grad_out).all():
        raise error("invalid_parameters", f"grad_out must be finite with shape {shape}, got {grad_out.shape}")
    return grad_out


def _tile(mats: np.ndarray, reps: int) -> np.ndarray:
    return mats if mats.shape[-1] == 1 else np.ascontiguousarray(np.tile(mats, reps))


def _normalised(probs: np.ndarray) -> np.ndarray:
    return probs / probs.sum(axis=1, keepdims=True)


_warm = False


def warm_up() -> None:
    """Load the kernels' cached machine code (or compile it), once per process.

    Numba does that at a kernel's first call while holding the GIL (~120 ms here, seconds when
    compiling). The trainer calls this before its first batch, and the server in a thread once
    it listens, so that it never stalls an event loop serving requests beside the trainer.
    """
    global _warm
    if _warm:
        return
    spec = CircuitSpec(2, 1)
    backend = StatevectorBackend(threads=1)
    X, theta = np.full((1, 2), 0.5), np.zeros(spec.n_params)
    backend.vjp(spec, X, theta, np.ones((1, 2)))
    backend.expectations_vjp(spec, X, theta)[1](np.ones((1, 2)))              # fused_kernels
    backend.metric_tensor(spec, X, theta)
    kern.apply_two_qubit(np.zeros((2, 4, 1)), 0, 1, 2, np.zeros((2, 4, 4, 1)))   # CompiledCircuit's gates
    _warm = True
