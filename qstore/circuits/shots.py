"""Parameter-shift gradients from shot-sampled expectations, with their shot variance.

A vector-Jacobian product from shots is a sum of shifted estimates of the
weighted observable O_c = sum_k c_k O_k. Its shot variance per shifted circuit is
Var(O_c) / shots, and Var(O_c) = sum_jk c_j c_k (<O_j O_k> - <O_j><O_k>): the
products O_j O_k of Z-products are Z-products too, so they are estimated from
the same shots as the observables themselves (one ``execute``), and the sample
covariance (divided by shots - 1) makes the variance estimate unbiased.
"""
from __future__ import annotations

import numpy as np

from qstore.errors import error

from .backend import Backend
from .gradients import parameter_shift
from .observables import ZObservables
from .spec import CircuitSpec


def _with_products(obs: ZObservables) -> tuple[ZObservables, np.ndarray]:
    """The observables followed by every distinct product O_j O_k (j < k); index (K, K) into that list
    (-1 on the diagonal, where O_k O_k = 1)."""
    terms = list(obs.terms)
    index = np.full((len(obs), len(obs)), -1)
    for j in range(len(obs)):
        for k in range(j + 1, len(obs)):
            product = tuple(sorted(set(obs.terms[j]) ^ set(obs.terms[k])))
            if product and product not in terms:
                terms.append(product)
            index[j, k] = index[k, j] = terms.index(product) if product else -2
    return ZObservables(tuple(terms), obs.n_qubits), index


def shot_vjp(backend: Backend, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, grad_out: np.ndarray,
             observables: ZObservables, inputs: bool = False
             ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Parameter-shift vjp on a shot-sampling backend: (grad_theta, grad_X or None, variance of grad_theta).

    ``theta`` is shared (P,), so grad_theta and its variance are (P,) summed over the batch.
    The variance is the shot noise of this estimate given ``grad_out``.
    """
    if backend.shots is None:
        raise error("invalid_parameters", f"backend {backend.name!r} computes exact expectations: no shots")
    if theta.ndim != 1:
        raise error("invalid_parameters", "shot_vjp takes shared parameters theta (P,)")
    shots = backend.shots
    extended, index = _with_products(observables)
    K = len(observables)
    evals, postprocess = parameter_shift(spec, X, theta, inputs=inputs)
    values = backend.execute(spec, evals.angles, evals.theta, extended)      # (N, K + products)
    means = values[:, :K]
    jac_theta, jac_x = postprocess(means)
    B, P = X.shape[0], spec.n_params
    # covariance of (O_j, O_k) per shifted circuit
    second = np.ones((values.shape[0], K, K))
    for j in range(K):
        for k in range(K):
            if j != k:
                second[:, j, k] = values[:, index[j, k]] if index[j, k] >= 0 else 1.0
    cov = (second - means[:, :, None] * means[:, None, :]) * shots / max(shots - 1, 1) / shots
    n_eval = values.shape[0] // B
    cov = cov.reshape(B, n_eval, K, K)[:, :2 * P]                            # theta shifts only
    c = np.asarray(grad_out, dtype=np.float64)
    var_circuit = np.einsum("bj,bsjk,bk->bs", c, cov, c)                      # (B, 2P)
    var_theta = (var_circuit[:, 0::2] + var_circuit[:, 1::2]).sum(axis=0) / 4.0
    g_theta = np.einsum("bk,bkp->p", c, jac_theta)
    g_x = np.einsum("bk,bkf->bf", c, jac_x) if jac_x is not None else None
    return g_theta, g_x, var_theta
