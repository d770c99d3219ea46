"""A local fake of IonQ's v0.4 job API, for running the real cirq-ionq client in tests.

It implements the endpoints cirq-ionq 1.7 calls (``cirq_ionq/ionq_client.py``):

* ``POST /v0.4/jobs`` create a job from an ``ionq.circuit.v1`` body
* ``GET  /v0.4/jobs/{id}`` job status (``ready`` -> ``running`` -> ``completed``)
* ``GET  /v0.4/jobs/{id}/results/probabilities`` {little-endian index: probability}
* ``PUT  /v0.4/jobs/{id}/status/cancel``

Probabilities come from Q-Store's own state-vector simulator of the submitted
gates. QPU targets return shot frequencies (seeded), the simulator exact
probabilities, as IonQ does. Knobs make the server misbehave on purpose:
``rate_limit`` (answer the next N requests with 429), ``fail_next`` (the next N
jobs fail), ``hang`` (jobs never finish).
"""
from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import cirq
import numpy as np
from aiohttp import web

from qstore.circuits.compiled_circuit import simulate
from qstore.circuits.density_matrix import DensityMatrixBackend
from qstore.circuits.noise import apply_readout

_ONE_QUBIT = {
    "x": cirq.X, "y": cirq.Y, "z": cirq.Z, "h": cirq.H, "s": cirq.S, "si": cirq.S ** -1,
    "t": cirq.T, "ti": cirq.T ** -1, "v": cirq.X ** 0.5, "vi": cirq.X ** -0.5,
}
_ROTATIONS = {"rx": cirq.rx, "ry": cirq.ry, "rz": cirq.rz}
_PARITY = {"xx": cirq.XXPowGate, "yy": cirq.YYPowGate, "zz": cirq.ZZPowGate}
_TERMINAL = ("completed", "failed", "canceled")


def circuit_from_json(ops: list[dict], n_qubits: int) -> cirq.Circuit:
    """IonQ ``qis`` JSON gates -> cirq circuit on LineQubits."""
    q = cirq.LineQubit.range(n_qubits)
    out = []
    for op in ops:
        name = op["gate"]
        if name in _ONE_QUBIT:
            out += [_ONE_QUBIT[name](q[t]) for t in op["targets"]]
        elif name in _ROTATIONS:
            out += [_ROTATIONS[name](op["rotation"])(q[t]) for t in op["targets"]]
        elif name == "cnot":
            out.append(cirq.CNOT(q[op["control"]], q[op["target"]]))
        elif name == "swap":
            out.append(cirq.SWAP(*(q[t] for t in op["targets"])))
        elif name in _PARITY:
            out.append(_PARITY[name](exponent=op["rotation"] / np.pi)(*(q[t] for t in op["targets"])))
        else:
            raise ValueError(f"unsupported gate {name!r}")
    return cirq.Circuit(out)


@dataclass
class FakeJob:
    id: str
    target: str
    name: str | None
    metadata: dict
    n_qubits: int
    probabilities: dict[str, float]
    status: str = "ready"
    polls: int = 0
    failure: str | None = None

    def as_json(self) -> dict:
        body = {"id": self.id, "status": self.status, "backend": self.target, "metadata": self.metadata,
                "stats": {"qubits": str(self.n_qubits)}}
        if self.name:
            body["name"] = self.name
        if self.failure:
            body["failure"] = {"error": self.failure, "code": "CompilationError"}
        return body


@dataclass
class FakeIonQ:
    """Run with ``with FakeIonQ() as fake: fake.url``."""

    api_key: str = "test-key"
    polls_to_complete: int = 2
    seed: int = 7
    rate_limit: int = 0
    fail_next: int = 0
    hang: bool = False
    #: noise of the QPU targets (a ``density_matrix`` noise: preset name, NoiseModel, cirq channel); the
    #: cloud simulator stays ideal, as IonQ's does unless asked for a noise model
    noise: Any = None
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    url: str = ""
    open_jobs: int = 0
    max_open: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------
    def __enter__(self) -> FakeIonQ:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            runner = web.AppRunner(self._app(), access_log=None)
            self._loop.run_until_complete(runner.setup())
            self._loop.run_until_complete(web.SockSite(runner, sock).start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, name="fake-ionq", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def created(self) -> int:
        return sum(1 for m, p, s in self.requests if m == "POST" and s == 200)

    # -- app ---------------------------------------------------------------------------
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/v0.4/jobs", self._create)
        app.router.add_get("/v0.4/jobs/{id}", self._get)
        app.router.add_get("/v0.4/jobs/{id}/results/probabilities", self._results)
        app.router.add_put("/v0.4/jobs/{id}/status/cancel", self._cancel)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler) -> web.StreamResponse:
        """Auth, injected 429s, and a request log."""
        if request.headers.get("Authorization") != f"apiKey {self.api_key}":
            response = web.json_response({"error": {"message": "bad key"}}, status=401)
        else:
            with self._lock:
                limited = self.rate_limit > 0
                self.rate_limit -= int(limited)
            if limited:
                response = web.json_response({"error": {"message": "slow down"}}, status=429)
            else:
                response = await handler(request)
        self.requests.append((request.method, request.path, response.status))
        return response

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        program = body.get("input", {})
        if body.get("type") != "ionq.circuit.v1" or "circuit" not in program:
            return web.json_response({"error": {"message": "only single-circuit jobs"}}, status=400)
        n = int(program["qubits"])
        job = FakeJob(id=str(uuid.uuid4()), target=body["backend"], name=body.get("name"),
                      metadata=body.get("metadata", {}), n_qubits=n, probabilities={})
        with self._lock:
            fail = self.fail_next > 0
            self.fail_next -= int(fail)
        try:
            if fail:
                raise ValueError("injected failure: trap lost ions")
            circuit, qubits = circuit_from_json(program["circuit"], n), cirq.LineQubit.range(n)
            if self.noise is not None and body["backend"] != "simulator":
                noisy = DensityMatrixBackend(noise=self.noise)
                probs = apply_readout(np.real(np.diag(noisy.density_matrix(circuit, qubits=qubits)))[None],
                                      noisy.readout)[0].clip(0.0, None)
            else:
                probs = np.abs(simulate(circuit, qubits=qubits)) ** 2
        except ValueError as exc:
            job.failure = str(exc)
        else:
            if job.target != "simulator":
                shots = int(body.get("shots", 100))
                probs = self._rng.multinomial(shots, probs / probs.sum()) / shots
            little = [int(format(i, f"0{n}b")[::-1], 2) for i in range(1 << n)]
            job.probabilities = {str(little[i]): float(p) for i, p in enumerate(probs) if p > 1e-12}
        self.jobs[job.id] = job
        self.open_jobs += 1
        self.max_open = max(self.max_open, self.open_jobs)
        return web.json_response({"id": job.id, "status": job.status})

    def _job(self, request: web.Request) -> FakeJob:
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            raise web.HTTPNotFound(text='{"error": {"message": "no such job"}}', content_type="application/json")
        return job

    def _finish(self, job: FakeJob, status: str) -> None:
        if job.status not in _TERMINAL:
            self.open_jobs -= 1
        job.status = status

    async def _get(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status not in _TERMINAL:
            job.polls += 1
            if job.failure:
                self._finish(job, "failed")
            elif self.hang or job.polls < self.polls_to_complete:
                job.status = "running"
            else:
                self._finish(job, "completed")
        return web.json_response(job.as_json())

    async def _results(self, request: web.Request) -> web.Response:
        job = self._job(request)
        if job.status != "completed":
            return web.json_response({"error": {"message": "job not completed"}}, status=400)
        return web.json_response(job.probabilities)

    async def _cancel(self, request: web.Request) -> web.Response:
        job = self._job(request)
        self._finish(job, "canceled")
        return web.json_response({"id": job.id, "status": "canceled"})
