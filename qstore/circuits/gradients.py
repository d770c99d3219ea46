"""Gradients as transforms over circuits.

A transform never runs anything: it returns the ``Evaluations`` (rows of input
angles and parameters) to execute and a ``postprocess`` that turns their
expectations into Jacobians. Any backend's ``execute`` can run them, so
parameter-shift works unchanged on the statevector, cirq and IonQ backends,
with or without shots (all rows go out in one batch, which IonQ submits as
concurrent jobs). ``jacobian`` and ``vjp`` run a transform on a backend;
method ``adjoint`` uses the statevector backend's own ``vjp``/``jacobian``.

Methods:

* ``parameter-shift``: exact two-term rule, d f/d t = [f(t + pi/2) - f(t - pi/2)] / 2,
  per parameter and per encoding gate (every gate is exp(-i t P / 2)); input
  gradients chain through the encoding. 2(P + n_inputs) circuits per sample.
* ``finite-diff``: central differences with ``step`` on parameters and features.
* ``spsa``: simultaneous perturbation, 2 circuits per draw per sample whatever
  the parameter count; unbiased up to O(c^2), for hardware budgets.
* ``adjoint``: exact, one forward and one backward pass (statevector only).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from qstore.errors import error

from .backend import Backend
from .observables import ObservablesLike, ZObservables
from .spec import CircuitSpec

log = logging.getLogger(__name__)

GRADIENT_METHODS = ("adjoint", "parameter-shift", "finite-diff", "spsa")
_ALIASES = {"parameter_shift": "parameter-shift", "param-shift": "parameter-shift", "ps": "parameter-shift",
            "finite_diff": "finite-diff", "finite-differences": "finite-diff", "fd": "finite-diff"}

Jacobians = tuple[np.ndarray, np.ndarray | None]
Postprocess = Callable[[np.ndarray], Jacobians]


@dataclass(frozen=True)
class Evaluations:
    """Circuits to run: input angles (N, n_inputs) and parameters (N, P)."""

    angles: np.ndarray
    theta: np.ndarray

    def __len__(self) -> int:
        return int(self.angles.shape[0])


def _rows(theta: np.ndarray, batch: int) -> np.ndarray:
    return np.broadcast_to(theta, (batch, theta.shape[-1])) if theta.ndim == 1 else theta


def _plus_minus(theta_rows: np.ndarray, inputs: np.ndarray, n_shifted: int, step: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """Per sample 2(P + n_shifted) rows: +/- ``step`` on each parameter, then on each of the
    first ``n_shifted`` input columns. Returns theta (B, rows, P) and inputs (B, rows, cols)."""
    P = theta_rows.shape[1]
    n_eval = 2 * (P + n_shifted)
    th = np.repeat(theta_rows[:, None, :], n_eval, axis=1)
    xs = np.repeat(inputs[:, None, :], n_eval, axis=1)
    k = np.arange(P)
    th[:, 2 * k, k] += step
    th[:, 2 * k + 1, k] -= step
    s = np.arange(n_shifted)
    xs[:, 2 * P + 2 * s, s] += step
    xs[:, 2 * P + 2 * s + 1, s] -= step
    return th, xs


def parameter_shift(spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, inputs: bool = True
                    ) -> tuple[Evaluations, Postprocess]:
    """Two-term shifts of every parameter (and every encoding gate if ``inputs``).

    ``postprocess(values (N, n_obs))`` returns (d/d theta (B, n_obs, P), d/dX (B, n_obs, F) or None).
    """
    X = spec.check_features(X)
    B, P = X.shape[0], spec.n_params
    angles = spec.encoder.angles(X)
    S = angles.shape[1] if inputs else 0
    n_eval = 2 * (P + S)
    th, an = _plus_minus(_rows(spec.check_params(theta, B), B), angles, S, np.pi / 2)
    evals = Evaluations(an.reshape(B * n_eval, -1), th.reshape(B * n_eval, P))

    def postprocess(values: np.ndarray) -> Jacobians:
        v = values.reshape(B, n_eval, -1)
        d = (v[:, 0::2] - v[:, 1::2]) / 2.0                   # (B, P + S, n_obs)
        jac_theta = d[:, :P].transpose(0, 2, 1)
        if not inputs:
            return jac_theta, None
        jac_angles = d[:, P:].transpose(2, 0, 1)                # (n_obs, B, S)
        jac_x = np.stack([spec.encoder.angles_vjp(X, g) for g in jac_angles], axis=1)
        return jac_theta, jac_x

    return evals, postprocess


def finite_differences(spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, inputs: bool = True,
                       step: float = 1e-3) -> tuple[Evaluations, Postprocess]:
    """Central differences with ``step`` on each parameter and (if ``inputs``) each feature."""
    X = spec.check_features(X)
    B, P, F = X.shape[0], spec.n_params, (X.shape[1] if inputs else 0)
    n_eval = 2 * (P + F)
    th, xs = _plus_minus(_rows(spec.check_params(theta, B), B), X, F, step)
    evals = Evaluations(spec.encode(xs.reshape(B * n_eval, -1)), th.reshape(B * n_eval, P))

    def postprocess(values: np.ndarray) -> Jacobians:
        v = values.reshape(B, n_eval, -1)
        d = ((v[:, 0::2] - v[:, 1::2]) / (2.0 * step)).transpose(0, 2, 1)   # (B, n_obs, P + F)
        return d[:, :, :P], (d[:, :, P:] if inputs else None)

    return evals, postprocess


def spsa(spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, inputs: bool = True, draws: int = 1,
         c: float = 0.1, seed: int | np.random.Generator | None = None) -> tuple[Evaluations, Postprocess]:
    """SPSA estimate from ``draws`` random +/-1 perturbations of size ``c`` per sample.

    Every sample draws its own perturbation of parameters and features, so the
    estimates of different samples are independent.
    """
    if int(draws) < 1 or not c > 0:
        raise error("invalid_parameters", "spsa needs draws >= 1 and c > 0")
    X = spec.check_features(X)
    B, P, F = X.shape[0], spec.n_params, (X.shape[1] if inputs else 0)
    theta_rows = _rows(spec.check_params(theta, B), B)
    rng = np.random.default_rng(seed)
    d_theta = rng.choice([-1.0, 1.0], size=(B, draws, P))
    d_x = rng.choice([-1.0, 1.0], size=(B, draws, F))
    sign = np.array([1.0, -1.0])[None, None, :, None]
    th = theta_rows[:, None, None, :] + sign * c * d_theta[:, :, None, :]          # (B, draws, 2, P)
    xs = np.broadcast_to(X[:, None, None, :], (B, draws, 2, X.shape[1])).copy()
    if inputs:
        xs += sign * c * d_x[:, :, None, :]
    evals = Evaluations(spec.encode(xs.reshape(-1, X.shape[1])), th.reshape(-1, P))

    def postprocess(values: np.ndarray) -> Jacobians:
        v = values.reshape(B, draws, 2, -1)
        slope = (v[:, :, 0] - v[:, :, 1]) / (2.0 * c)                   # (B, draws, n_obs)
        jac_theta = np.einsum("bdk,bdp->bkp", slope, d_theta) / draws
        jac_x = np.einsum("bdk,bdf->bkf", slope, d_x) / draws if inputs else None
        return jac_theta, jac_x

    return evals, postprocess


_TRANSFORMS = {"parameter-shift": parameter_shift, "finite-diff": finite_differences, "spsa": spsa}


def gradient_method(name: str, backend: Backend | None = None) -> str:
    """Canonical method name, or ``unknown_gradient``: for an unknown name, or for
    ``adjoint`` on a ``backend`` that does not declare ``supports_adjoint``."""
    method = _ALIASES.get(name, name)
    if method not in GRADIENT_METHODS:
        raise error("unknown_gradient", f"unknown gradient {name!r}; choose one of {', '.join(GRADIENT_METHODS)}")
    if method == "adjoint" and backend is not None and not backend.supports_adjoint:
        raise error("unknown_gradient", f"gradient 'adjoint' needs the statevector backend, not {backend.name!r}; "
                                        "use parameter-shift")
    return method


def jacobian(backend: Backend, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray,
             observables: ObservablesLike | ZObservables | None = None, method: str = "parameter-shift",
             inputs: bool = True, **options: Any) -> Jacobians:
    """Per-sample Jacobians (B, n_obs, P) and (B, n_obs, F) (or None) with ``method`` on ``backend``.

    ``options`` go to the transform (``step`` for finite-diff; ``draws``, ``c``,
    ``seed`` for spsa).
    """
    method = gradient_method(method, backend)
    X, theta, obs = backend.prepare(spec, X, theta, observables)
    if method == "adjoint":
        jac_theta, jac_x = backend.jacobian(spec, X, theta, obs)
        return jac_theta, (jac_x if inputs else None)
    evals, postprocess = _TRANSFORMS[method](spec, X, theta, inputs=inputs, **options)
    log.debug("%s: %d circuit evaluations on %s", method, len(evals), backend.name)
    return postprocess(backend.execute(spec, evals.angles, evals.theta, obs))


def vjp(backend: Backend, spec: CircuitSpec, X: np.ndarray, theta: np.ndarray, grad_out: np.ndarray,
        observables: ObservablesLike | ZObservables | None = None, method: str = "adjoint",
        inputs: bool = True, **options: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Vector-Jacobian product of ``backend.expectations`` for loss gradient ``grad_out`` (B, n_obs).

    Returns (grad_theta, grad_X): grad_theta is (P,) summed over the batch when
    theta is (P,), or (B, P) for per-sample theta; grad_X is (B, F) or None.
    """
    method = gradient_method(method, backend)
    X, theta, obs = backend.prepare(spec, X, theta, observables)
    grad_out = np.asarray(grad_out, dtype=np.float64)
    if grad_out.shape != (X.shape[0], len(obs)) or not np.all(np.isfinite(grad_out)):
        raise error("invalid_parameters",
                    f"grad_out must be finite with shape {(X.shape[0], len(obs))}, got {grad_out.shape}")
    if method == "adjoint":
        return backend.vjp(spec, X, theta, grad_out, obs, inputs=inputs)
    jac_theta, jac_x = jacobian(backend, spec, X, theta, obs, method, inputs, **options)
    g_theta = np.einsum("bk,bkp->bp", grad_out, jac_theta)
    g_x = np.einsum("bk,bkf->bf", grad_out, jac_x) if jac_x is not None else None
    return (g_theta if theta.ndim == 2 else g_theta.sum(axis=0)), g_x
