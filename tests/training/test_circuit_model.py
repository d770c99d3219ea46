"""CircuitModel: a user's cirq circuit trained as a model (gradients, paths, serialisation, training)."""
from __future__ import annotations

import cirq
import numpy as np
import pytest
import sympy

from qstore.errors import QStoreError
from qstore.training import VQC, CircuitModel, Trainer, model_from_config
from qstore.training.reference_datasets import RECIPES

x0, x1, w0, w1, w2 = sympy.symbols("x0 x1 w0 w1 w2")
q = cirq.LineQubit.range(3)


def shared_scaled_circuit() -> cirq.Circuit:
    """Inputs and weights in several gates and in scaled expressions (w1 * x1: a product)."""
    return cirq.Circuit(
        cirq.ry(np.pi * x0).on(q[0]), cirq.ry(np.pi * x1).on(q[1]),
        cirq.rx(2 * w0 + 0.3).on(q[0]), cirq.rz(w0).on(q[1]), cirq.ry(-0.5 * w2).on(q[2]),
        cirq.CNOT(q[0], q[1]), cirq.CNOT(q[1], q[2]),
        cirq.rx(w1 * x1).on(q[2]), cirq.ry(w0 - w2).on(q[0]), cirq.rz(3 * x0 + w1).on(q[1]),
        cirq.CZ(q[2], q[0]), cirq.rx(w2).on(q[1]))


OBSERVABLES = [cirq.Z(q[0]) * cirq.Z(q[1]) + 0.5 * cirq.X(q[2]), cirq.Y(q[1]), cirq.Z(q[2])]


def _expectations(circuit: cirq.Circuit, resolver: dict) -> np.ndarray:
    psi = cirq.Simulator(dtype=np.complex128).simulate(circuit, resolver, qubit_order=q).final_state_vector
    qubit_map = {qb: i for i, qb in enumerate(q)}
    return np.array([o.expectation_from_state_vector(psi, qubit_map).real for o in OBSERVABLES])


def parameter_shift_jacobian(circuit: cirq.Circuit, resolver: dict, symbols: list) -> np.ndarray:
    """d<O_k>/d symbol by the two-term rule on every rotation gate separately, then the chain rule."""
    jac = np.zeros((len(OBSERVABLES), len(symbols)))
    ops = list(circuit.all_operations())
    for i, op in enumerate(ops):
        gate = op.gate
        if not isinstance(gate, cirq.Rx | cirq.Ry | cirq.Rz) or not cirq.is_parameterized(gate):
            continue
        rads = sympy.sympify(gate._rads)
        shifted = []
        for s in (np.pi / 2, -np.pi / 2):
            new = type(gate)(rads=rads + s).on(*op.qubits)
            shifted.append(_expectations(cirq.Circuit(ops[:i] + [new] + ops[i + 1:]), resolver))
        d_angle = (shifted[0] - shifted[1]) / 2
        for j, sym in enumerate(symbols):
            jac[:, j] += d_angle * float(sympy.diff(rads, sym).subs(resolver))
    return jac


@pytest.mark.parametrize("path", ["adjoint", "cirq"])
def test_gradients_equal_cirq_parameter_shift_for_shared_and_scaled_symbols(path: str) -> None:
    model = CircuitModel(shared_scaled_circuit(), inputs=[x0, x1], weights=[w0, w1, w2],
                         observables=OBSERVABLES, n_classes=3, path=path)
    assert model.path == path
    rng = np.random.default_rng(3)
    X, w = rng.uniform(0, 1, (4, 2)), rng.uniform(-np.pi, np.pi, 3)
    cot = rng.normal(size=(4, 3))
    z, pullback = model.circuit_forward(X, w)
    g_w, g_x = pullback(cot)
    np.testing.assert_array_equal(z, model.circuit_outputs(X, w))
    again = pullback(cot)                      # a second backward (torch's retain_graph) gives the same
    np.testing.assert_array_equal(again[0], g_w)
    np.testing.assert_array_equal(again[1], g_x)
    want_w = np.zeros(3)
    for b in range(4):
        resolver = {"x0": X[b, 0], "x1": X[b, 1], "w0": w[0], "w1": w[1], "w2": w[2]}
        np.testing.assert_allclose(z[b], _expectations(shared_scaled_circuit(), resolver), atol=1e-10)
        jac = parameter_shift_jacobian(shared_scaled_circuit(), resolver, [x0, x1, w0, w1, w2])
        np.testing.assert_allclose(g_x[b], cot[b] @ jac[:, :2], atol=1e-6)
        want_w += cot[b] @ jac[:, 2:]
    np.testing.assert_allclose(g_w, want_w, atol=1e-6)


class _Phase(cirq.Gate):
    """A parameterised gate that is no EigenGate and has no decomposition: only the cirq path runs it."""

    def __init__(self, t):
        self.t = t

    def _num_qubits_(self) -> int:
        return 1

    def _is_parameterized_(self) -> bool:
        return cirq.is_parameterized(self.t)

    def _parameter_names_(self):
        return cirq.parameter_names(self.t)

    def _resolve_parameters_(self, resolver, recursive):
        return _Phase(cirq.resolve_parameters(self.t, resolver, recursive))

    def _has_unitary_(self) -> bool:
        return not self._is_parameterized_()

    def _unitary_(self):
        if self._is_parameterized_():
            return NotImplemented
        c, s = np.cos(float(self.t)), np.sin(float(self.t))
        return np.array([[c, -s], [s, c]])


def test_gates_without_adjoint_rule_fall_back_to_cirq_and_say_so(caplog) -> None:
    circuit = cirq.Circuit(cirq.ry(np.pi * x0).on(q[0]), _Phase(w0).on(q[0]), cirq.rx(w1).on(q[0]))
    with caplog.at_level("INFO", logger="qstore.training.circuit_model"):
        model = CircuitModel(circuit, inputs=[x0], weights=[w0, w1], observables=[cirq.Z(q[0])])
    assert model.path == "cirq" and "finite differences" in caplog.text
    X, w = np.array([[0.3], [0.8]]), np.array([0.4, -1.1])
    g_w, g_x = model.circuit_forward(X, w)[1](np.ones((2, 1)))
    # <Z> = cos(pi x0 + 2 w0) cos(w1) for RY(pi x0) then a real rotation by w0 (= RY(2 w0)) then RX(w1)
    a = np.pi * X[:, 0] + 2 * w[0]
    np.testing.assert_allclose(model.circuit_outputs(X, w)[:, 0], np.cos(a) * np.cos(w[1]), atol=1e-12)
    np.testing.assert_allclose(g_x[:, 0], -np.pi * np.sin(a) * np.cos(w[1]), atol=1e-7)
    np.testing.assert_allclose(g_w, [np.sum(-2 * np.sin(a) * np.cos(w[1])), np.sum(-np.cos(a) * np.sin(w[1]))],
                               atol=1e-7)
    with pytest.raises(QStoreError) as exc:
        CircuitModel(circuit, inputs=[x0], weights=[w0, w1], observables=[cirq.Z(q[0])], path="adjoint")
    assert exc.value.code == "invalid_parameters"


@pytest.mark.parametrize("bad", ["not json", '{"cirq_type": "LineQubit", "x": 0}', 3, None])
def test_refuses_anything_that_is_not_a_circuit(bad) -> None:
    with pytest.raises(QStoreError) as exc:
        CircuitModel(bad, inputs=[x0], weights=[w0], observables=[cirq.Z(q[0])], n_classes=2)
    assert exc.value.code == "invalid_argument"
    with pytest.raises(QStoreError) as exc:
        model_from_config({"type": "circuit", "circuit": cirq.to_json(cirq.X(q[0])), "inputs": ["x0"],
                           "weights": [], "observables": [cirq.to_json(cirq.PauliSum.wrap(cirq.Z(q[0])))]})
    assert exc.value.code == "invalid_argument"


def test_hostile_configs_get_typed_errors() -> None:
    good = CircuitModel(shared_scaled_circuit(), inputs=[x0, x1], weights=[w0, w1, w2],
                        observables=[cirq.Z(q[2])]).config()
    for key, value in [("inputs", 5), ("weights", {"a": 1}), ("observables", 7), ("observables", ["{}"]),
                       ("groups", [1]), ("path", "gpu"), ("n_classes", "two"), ("circuit", "[" * 10_000)]:
        with pytest.raises(QStoreError):
            model_from_config({**good, key: value})
    with pytest.raises(QStoreError):
        Trainer(None, model_from_config(good), freeze=5)


def test_refuses_bad_symbols_observables_and_measurements() -> None:
    circuit = cirq.Circuit(cirq.rx(x0).on(q[0]), cirq.ry(w0).on(q[0]))
    cases = [dict(inputs=[x0], weights=[], observables=[cirq.Z(q[0])]),                     # w0 unbound
             dict(inputs=[x0], weights=[x0, w0], observables=[cirq.Z(q[0])]),               # x0 twice
             dict(inputs=[x0], weights=[w0], observables=[]),
             dict(inputs=[x0], weights=[w0], observables=["Z"]),
             dict(inputs=[x0], weights=[w0], observables=[cirq.Z(q[0]), cirq.X(q[0])]),     # 2 for binary
             dict(inputs=[x0], weights=[w0], observables=[1j * cirq.Z(q[0])])]
    for kwargs in cases:
        with pytest.raises(QStoreError):
            CircuitModel(circuit, n_classes=2, **kwargs)
    with pytest.raises(QStoreError):
        CircuitModel(circuit + cirq.measure(q[0]), inputs=[x0], weights=[w0], observables=[cirq.Z(q[0])])


def iris_circuit(layers: int = 3) -> tuple[cirq.Circuit, list, list, list]:
    """Written from scratch in cirq: RY(pi x) encoding, RX-RY-RZ layers with a CNOT ring, Z on 3 qubits."""
    qs = cirq.LineQubit.range(4)
    xs = sympy.symbols("x0:4")
    ws = sympy.symbols(f"w0:{layers * 12}")
    c = cirq.Circuit(cirq.ry(np.pi * xs[i]).on(qs[i]) for i in range(4))
    for layer in range(layers):
        for i in range(4):
            k = (layer * 4 + i) * 3
            c.append([cirq.rx(ws[k]).on(qs[i]), cirq.ry(ws[k + 1]).on(qs[i]), cirq.rz(ws[k + 2]).on(qs[i])])
        c.append(cirq.CNOT(qs[i], qs[(i + 1) % 4]) for i in range(4))
    return c, list(xs), list(ws), [cirq.Z(qs[1]), cirq.Z(qs[2]), cirq.Z(qs[3])]


async def test_from_scratch_circuit_reaches_the_vqc_accuracy_on_iris(fastdb, reference) -> None:
    recipe = RECIPES["iris"]
    data = reference("iris", 4)
    await fastdb.import_dataset("iris", data.X_train, data.y_train)
    vqc = Trainer(fastdb, VQC(4, 3, n_classes=3), lr=recipe.lr, batch_size=recipe.batch_size, seed=0)
    await vqc.fit("iris", epochs=recipe.epochs)
    vqc_accuracy = await vqc.evaluate(data.X_test, data.y_test)
    circuit, xs, ws, obs = iris_circuit()
    model = CircuitModel(circuit, inputs=xs, weights=ws, observables=obs, n_classes=3)
    assert model.path == "adjoint"
    trainer = Trainer(fastdb, model, lr=recipe.lr, batch_size=recipe.batch_size, seed=0)
    await trainer.fit("iris", epochs=recipe.epochs)
    accuracy = await trainer.evaluate(data.X_test, data.y_test)
    assert accuracy >= min(vqc_accuracy, recipe.target), (accuracy, vqc_accuracy)


async def test_checkpoint_resume_and_config_round_trip(fastdb) -> None:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (40, 2))
    y = X[:, 0] - 0.5 * X[:, 1]
    await fastdb.import_dataset("reg", X, y)
    circuit = shared_scaled_circuit()

    def build() -> CircuitModel:
        return CircuitModel(circuit, inputs=[x0, x1], weights=[w0, w1, w2], observables=[cirq.Z(q[2])])

    straight = Trainer(fastdb, build(), lr=0.05, batch_size=8, seed=1, run="straight")
    await straight.fit("reg", epochs=4)
    first = Trainer(fastdb, build(), lr=0.05, batch_size=8, seed=1, run="split")
    await first.fit("reg", epochs=2, checkpoint_every=2)
    resumed = await Trainer.from_checkpoint(fastdb, first.checkpoints[-1])
    assert isinstance(resumed.model, CircuitModel) and resumed.model.metric_name == "r2"
    assert cirq.approx_eq(resumed.model.circuit, circuit)
    await resumed.fit(epochs=2)
    np.testing.assert_array_equal(resumed.model.params, straight.model.params)
    assert resumed.model.score(X, y) == straight.model.score(X, y)


async def test_server_train_job_trains_a_circuit_model_from_its_config(server, reference) -> None:
    from qstore_client import AsyncClient

    data = reference("iris-binary")
    qs = cirq.LineQubit.range(4)
    xs, ws = sympy.symbols("x0:4"), sympy.symbols("w0:8")
    circuit = cirq.Circuit([cirq.ry(np.pi * xs[i]).on(qs[i]) for i in range(4)]
                           + [cirq.ry(ws[i]).on(qs[i]) for i in range(4)]
                           + [cirq.CNOT(qs[i], qs[i + 1]) for i in range(3)]
                           + [cirq.rx(2 * ws[4 + i]).on(qs[i]) for i in range(4)])
    config = CircuitModel(circuit, inputs=xs, weights=ws, observables=[cirq.Z(qs[3])], n_classes=2).config()
    async with AsyncClient(server.url) as client:
        await client.import_dataset("circuit-flowers", data.X_train, data.y_train)
        job = await client.start_job("train", {"dataset": "circuit-flowers", "model": config, "epochs": 3,
                                               "batch_size": 16, "run": "circuit-job"})
        done = await client.wait_job(job.id, timeout=120)
        assert done.state == "succeeded", done.error
        ckpt = await client.load_checkpoint((await client.job_result(job.id))["latest_checkpoint"])
        model = model_from_config(ckpt["model"]["config"])
        model.load_state(ckpt["model"]["state"])
        assert model.score(data.X_test, data.y_test, params=ckpt["params"]) >= 0.9
        bad = dict(config, circuit=cirq.to_json(cirq.Z(qs[0])))
        with pytest.raises(QStoreError) as exc:
            await client.start_job("train", {"dataset": "circuit-flowers", "model": bad})
        assert exc.value.code == "invalid_argument"
