"""Circuits, backends and gradients for Q-Store's training engine.

The model circuit
-----------------
``CircuitSpec(n_qubits, layers, encoding="angle"|"amplitude",
entanglement="linear"|"circular"|"full", reupload=False, n_features=None,
readout=None)`` describes encoding + ``layers`` x (RX·RY·RZ per qubit, CNOT
entangler) + <Z> readout.

* ``spec.n_params`` = 3 * n_qubits * layers, ordered layer, qubit, (RX, RY, RZ).
* ``spec.readout`` readout qubits (default all); ``spec.observables`` the <Z_q>.
* ``spec.to_cirq()`` -> ``(cirq.Circuit, theta_symbols, input_symbols)`` with
  sympy parameters. Input symbols are the encoding gates' angles
  (``spec.encode(X)``); ``spec.resolver(angles_row, theta_row)`` binds a row.

Backends (``get_backend(name, **options)``, in ``registry``)
-------------------------------------------------------------
``"statevector"`` (default, ``StatevectorBackend``), ``"cirq"``,
``"cirq-density-matrix"`` (``CirqBackend``, optional ``noise``), ``"ionq"``
(``IonQBackend``). All of them:

* ``backend.expectations(spec, X, theta, observables=None) -> (B, n_obs)``
  float64. X is (B, F); theta is (P,) shared or (B, P) per sample;
  observables is a list of qubits (Z) or tuples of qubits (Z products).
* ``backend.sample(spec, X, theta, shots, seed=None) -> list[dict[str, int]]``
  bitstring counts per row, qubit 0 first.
* ``backend.execute(spec, angles, theta, observables)``: the same on encoded
  input angles; what gradient transforms call.

Capabilities are declared, never probed: ``supports_adjoint`` (``vjp``,
``jacobian``), ``supports_metric`` (``metric_tensor``), ``supports_shots``.
Statevector extras (exact, adjoint method):

* ``sv.vjp(spec, X, theta, grad_out, observables=None, inputs=True)
  -> (grad_theta, grad_X)``: grad_theta (P,) summed over the batch for shared
  theta, (B, P) for per-sample theta; grad_X (B, F) or None.
* ``sv.jacobian(spec, X, theta, observables=None)
  -> ((B, n_obs, P), (B, n_obs, F))``.
* ``sv.states(spec, X, theta) -> (B, 2^n)``; ``sv.state_derivatives(...)
  -> (states, (B, P, 2^n))``; ``sv.metric_tensor(spec, X, theta,
  kind="full"|"block"|"diag") -> (B, P, P)`` (Fubini–Study, for QNG).

Gradients on any backend (``gradients``)
-----------------------------------------
``vjp(backend, spec, X, theta, grad_out, observables=None, method="adjoint",
inputs=True, **options)`` and ``jacobian(backend, spec, X, theta,
observables=None, method="parameter-shift", inputs=True, **options)`` with
method ``adjoint`` (statevector), ``parameter-shift``, ``finite-diff``
(``step``) or ``spsa`` (``draws``, ``c``, ``seed``). The transforms
``parameter_shift``, ``finite_differences`` and ``spsa`` return
``(Evaluations, postprocess)`` and never run anything themselves.

Arbitrary cirq circuits (``compiled_circuit``, a NumPy simulator; VQE is ``qstore.vqe``)
------------------------------------------------------------------------------------
``expectation_pauli_sum(state, terms)``, ``CompiledCircuit(circuit, symbols)``
with ``.states``, ``.expectation`` and ``.value_and_grad`` (adjoint), and
``pauli_sum_value_and_grad(circuit, symbols, values, hamiltonian)``. Terms are
a ``cirq.PauliSum`` or ``[(coef, "XZIY"), ...]``.

Hardware conditions (``density_matrix``, ``noise``, ``mitigation``, ``shots``)
------------------------------------------------------------------------------
``get_backend("density_matrix", noise="ionq_aria" | NoiseModel | cirq channel | dict,
shots=None, seed=None, mitigation=None | Mitigation | {"zne": "richardson"|"linear"|None,
"scale_factors": (1, 3, 5), "readout": True})``: ``dm.density_matrix(circuit)`` (noisy final
state of any cirq circuit), ``dm.energy(circuit, hamiltonian, resolver)`` (as measured, mitigated
if set), and the usual ``expectations``/``sample``. Every backend has ``with_shots(n)``;
``shots.shot_vjp`` gives parameter-shift gradients from shots with their variance.

Errors are ``qstore_client.errors`` classes with codes ``unknown_backend``,
``too_many_qubits``, ``invalid_parameters``, ``invalid_features``,
``unknown_gradient``, ``budget_exceeded``, ``job_failed``, ``job_timeout`` and
``backend_error``.
"""
from .backend import Backend, require_metric
from .cirq_backend import CirqBackend
from .compiled_circuit import CompiledCircuit, pauli_sum_value_and_grad, simulate
from .density_matrix import DensityMatrixBackend
from .gradients import (
                        GRADIENT_METHODS,
                        Evaluations,
                        finite_differences,
                        gradient_method,
                        jacobian,
                        parameter_shift,
                        spsa,
                        vjp,
)
from .metric import fubini_study_metric
from .mitigation import Mitigation
from .noise import NoiseModel
from .observables import PauliTerms, ZObservables, expectation_pauli_sum, pauli_terms, z_observables
from .registry import backend_names, get_backend
from .spec import CircuitSpec
from .statevector import StatevectorBackend, warm_up

__all__ = [
    "Backend", "CircuitSpec", "CirqBackend", "CompiledCircuit", "DensityMatrixBackend", "Evaluations",
    "GRADIENT_METHODS", "Mitigation", "NoiseModel", "PauliTerms", "StatevectorBackend", "ZObservables",
    "backend_names", "expectation_pauli_sum",
    "finite_differences", "fubini_study_metric", "get_backend", "gradient_method", "jacobian",
    "parameter_shift", "pauli_sum_value_and_grad", "pauli_terms", "require_metric", "simulate", "spsa", "vjp",
    "warm_up", "z_observables",
]
