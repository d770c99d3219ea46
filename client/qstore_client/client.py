"""AsyncClient: the embedded `qstore.Database` API, over HTTP to a `qstore serve` node.

Method for method the same names, arguments, result types and QStoreError classes as the
embedded engine; the protocol module decides how each call travels.
"""
from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
from numpy.typing import ArrayLike

from .api import BranchSpec, Filter, Metadata
from .errors import QStoreError, error
from .protocol import JSON, MSGPACK, OPS, PREFIX, error_from_body, loads
from .transport import Pool, Reply, TransportError
from .types import Hit, Measurement, Page, Record

# Status -> code for error replies without a protocol body (e.g. from a proxy).
STATUS_CODES = {400: "invalid_argument", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                409: "conflict", 413: "limit_exceeded", 415: "unsupported_media_type", 429: "too_many_requests",
                502: "backend_error", 503: "unavailable", 504: "unavailable",
                507: "insufficient_storage"}


@dataclass(frozen=True)
class Job:
    """A server job's status. `state` is pending | running | succeeded | failed | cancelled."""

    id: str
    kind: str
    state: str
    progress: float
    message: str
    params: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    error: QStoreError | None

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @classmethod
    def from_wire(cls, doc: dict[str, Any]) -> Job:
        err = doc.get("error")
        return cls(id=doc["id"], kind=doc["kind"], state=doc["state"], progress=doc["progress"],
                   message=doc["message"], params=doc["params"], created_at=doc["created_at"],
                   started_at=doc["started_at"], finished_at=doc["finished_at"],
                   error=error(err["code"], err["message"]) if err else None)


class AsyncClient:
    """`async with AsyncClient("http://127.0.0.1:8470", api_key=...) as client: ...`

    Keeps a pool of keep-alive connections (one per concurrent call, up to `max_connections`).
    Each call has a `timeout` in seconds. Reads are retried on transport failures and 503s
    with exponential backoff; writes never are, since a lost reply may hide an applied write.
    `ssl` is an SSLContext for https (e.g. one trusting a private CA) or False to skip checks.
    """

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0,
                 connect_timeout: float = 10.0, retries: int = 3, backoff: float = 0.05,
                 use_json: bool = False, ssl: ssl_module.SSLContext | bool | None = None,
                 max_connections: int = 100):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._binary = not use_json
        media = JSON if use_json else MSGPACK
        headers = {"Content-Type": media, "Accept": media}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._pool = Pool(self.url, headers, max_connections=max_connections, connect_timeout=connect_timeout, ssl=ssl)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._pool.close()

    # ------------------------------------------------------------------ transport

    async def _call(self, name: str, args: dict[str, Any] | None = None, *, read: bool | None = None) -> Any:
        """Make operation `name` with a method's arguments (its `locals()`, so each argument is named
        once, in the signature, which a test holds to `OPS`): path parameters go in the path, query
        parameters in the query string, the rest in the body (an optional None is the default)."""
        op = OPS[name]
        args = {k: v for k, v in (args or {}).items() if k != "self"}
        target = PREFIX + op.path.format(**{p: quote(args.pop(p), safe="") for p in op.path_params})
        query = {q: v for q in op.query if (v := args.pop(q, None)) is not None}
        if query:
            target += "?" + urlencode(query)
        body = op.encode_body(args, self._binary) if op.method == "POST" else None
        reply = await self._send(op.method, target, body, op.read if read is None else read)
        return self._result(op, reply, f"{op.method} {target}")

    async def _send(self, method: str, target: str, body: bytes | None, retry: bool) -> Reply:
        attempts = 1 + self.retries if retry else 1
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                reply = await self._pool.request(method, target, body, self.timeout)
            except TransportError as exc:
                if last:
                    raise error("unavailable", f"{method} {target}: {exc}") from exc
            else:
                if reply.status != 503 or last:
                    return reply
            await asyncio.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _result(op: Any, reply: Reply, what: str) -> Any:
        try:
            payload = loads(reply.body, reply.content_type) if reply.body else None
        except QStoreError:
            payload = None
        if 300 <= reply.status < 400:
            raise error("invalid_argument", f"{what}: the server redirected (HTTP {reply.status}) to "
                                            f"{reply.location or '(no Location)'}; the client does not follow "
                                            "redirects, so give it the final URL")
        if reply.status >= 400:
            err = error_from_body(payload)
            if err is None:
                code = STATUS_CODES.get(reply.status, "internal" if reply.status >= 500 else "invalid_argument")
                err = error(code, f"{what}: HTTP {reply.status}: {reply.body[:200].decode(errors='replace')}")
            raise err
        return op.decode_result(payload)

    # ------------------------------------------------------------------ database

    async def health(self) -> dict[str, Any]:
        return await self._call("health")

    async def metrics(self) -> str:
        """The Prometheus text exposition of /v1/metrics."""
        reply = await self._send("GET", PREFIX + "/metrics", None, retry=True)
        if reply.status >= 400:
            self._result(OPS["health"], reply, "GET /v1/metrics")  # raises the reply's error
        return reply.body.decode()

    async def list_collections(self) -> list[str]:
        return await self._call("list_collections")

    async def create_collection(self, name: str, dim: int, metric: str = "cosine", index: dict[str, Any] | None = None,
                                coherence_time: float | None = None, on_decohere: str = "delete",
                                store: str | None = None) -> Collection:
        return Collection(self, await self._call("create_collection", locals()))

    async def collection(self, name: str) -> Collection:
        return Collection(self, await self._call("collection", locals()))

    async def drop_collection(self, name: str) -> None:
        await self._call("drop_collection", locals())

    async def put_state(self, id: str, statevector: ArrayLike) -> None:
        await self._call("put_state", locals())

    async def get_state(self, id: str) -> np.ndarray:
        return await self._call("get_state", locals())

    async def measure_state(self, id: str, shots: int = 1000, qubits: Sequence[int] | None = None,
                            seed: int | None = None) -> dict[str, int]:
        return await self._call("measure_state", locals())

    async def delete_state(self, id: str) -> None:
        await self._call("delete_state", locals())

    async def import_dataset(self, name: str, X: ArrayLike, y: ArrayLike) -> Collection:
        return Collection(self, await self._call("import_dataset", locals()))

    async def list_datasets(self) -> list[str]:
        return await self._call("list_datasets")

    async def dataset_info(self, name: str) -> dict[str, Any]:
        return await self._call("dataset_info", locals())

    async def load_dataset(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return await self._call("load_dataset", locals())

    async def sweep(self) -> int:
        """Remove decohered records now instead of at the background sweeper's next pass."""
        return await self._call("sweep")

    async def backup(self, name: str) -> dict[str, Any]:
        """Back the server's database up to ``<data dir>/backups/<name>`` (admin scope); returns
        the backup's manifest. Writers keep going while it runs."""
        return await self._call("backup", locals())

    async def save_checkpoint(self, doc: dict[str, Any], id: str | None = None) -> str:
        return await self._call("save_checkpoint", locals())

    async def list_checkpoints(self, run: str | None = None) -> list[dict[str, Any]]:
        return await self._call("list_checkpoints", locals())

    async def load_checkpoint(self, id: str) -> dict[str, Any]:
        return await self._call("load_checkpoint", locals())

    async def delete_checkpoint(self, id: str) -> None:
        await self._call("delete_checkpoint", locals())

    # ------------------------------------------------------------------ jobs

    async def job_kinds(self) -> list[str]:
        return await self._call("job_kinds")

    async def start_job(self, kind: str, params: dict[str, Any] | None = None) -> Job:
        return Job.from_wire(await self._call("start_job", locals()))

    async def list_jobs(self) -> list[Job]:
        return [Job.from_wire(doc) for doc in await self._call("list_jobs")]

    async def job(self, id: str) -> Job:
        return Job.from_wire(await self._call("job", locals()))

    async def job_result(self, id: str) -> Any:
        """The finished job's result; a failed job raises its error, an unfinished one `conflict`."""
        return await self._call("job_result", locals())

    async def cancel_job(self, id: str) -> Job:
        return Job.from_wire(await self._call("cancel_job", locals()))

    async def delete_job(self, id: str) -> Any:
        return await self._call("delete_job", locals())

    async def wait_job(self, id: str, timeout: float | None = None, poll: float = 0.1) -> Job:
        """Poll until the job finishes (any final state); `unavailable` after `timeout` seconds."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not (job := await self.job(id)).done:
            if deadline is not None and loop.time() > deadline:
                raise error("unavailable", f"job {id} still {job.state} after {timeout}s")
            await asyncio.sleep(poll)
        return job


class Collection:
    """A remote collection: the same methods and results as `qstore.Collection`."""

    def __init__(self, client: AsyncClient, descriptor: dict[str, Any]):
        self._client = client
        self.name: str = descriptor["name"]
        self.dim: int = descriptor["dim"]
        self.metric: str = descriptor["metric"]

    def __repr__(self) -> str:
        return f"Collection(name={self.name!r}, dim={self.dim}, metric={self.metric!r}, url={self._client.url!r})"

    async def _call(self, name: str, args: dict[str, Any] | None = None, read: bool | None = None) -> Any:
        return await self._client._call(name, {**(args or {}), "name": self.name}, read=read)

    async def info(self) -> dict[str, Any]:
        return await self._call("info")

    async def count(self) -> int:
        return await self._call("count")

    async def upsert(self, ids: Sequence[str], vectors: ArrayLike, metadata: Sequence[Metadata | None] | None = None,
                     coherence_time: float | None = None) -> int:
        return await self._call("upsert", locals())

    async def get(self, ids: Sequence[str]) -> list[Record | None]:
        return await self._call("get", locals())

    async def delete(self, ids: Sequence[str]) -> int:
        return await self._call("delete", locals())

    async def query(self, vector: ArrayLike, top_k: int = 10, filter: Filter | None = None, context: str | None = None,
                    tunneling: float | None = None, seed: int | None = None, ef: int | None = None,
                    per_region: int | None = None) -> list[Hit]:
        return await self._call("query", locals())

    async def query_batch(self, vectors: ArrayLike, top_k: int = 10,
                          filter: Filter | None = None) -> list[list[Hit]]:
        return await self._call("query_batch", locals())

    async def scroll(self, limit: int = 100, cursor: str | None = None, filter: Filter | None = None) -> Page:
        return await self._call("scroll", locals())

    async def superpose(self, id: str, branches: Sequence[BranchSpec], metadata: Metadata | None = None,
                        coherence_time: float | None = None) -> None:
        await self._call("superpose", locals())

    async def measure(self, id: str, context: str | None = None, collapse: bool = False,
                      seed: int | None = None) -> Measurement:
        return await self._call("measure", locals(), read=not collapse)

    async def entangle(self, group: str, ids: Sequence[str], strength: float = 1.0) -> None:
        await self._call("entangle", locals())

    async def disentangle(self, group: str, ids: Sequence[str] | None = None) -> None:
        await self._call("disentangle", locals())

    async def update(self, id: str, vector: ArrayLike) -> None:
        await self._call("update", locals())

    async def correlation(self, id_a: str, id_b: str) -> float:
        return await self._call("correlation", locals())

    async def build_regions(self, n_regions: int | None = None, seed: int = 0) -> int:
        """(Re)partition the vectors into tunneling regions; returns how many."""
        return await self._call("build_regions", locals())
