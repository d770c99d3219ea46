"""A participant reached over the network: a Q-Store server running the federated job kinds.

Each round is one ``federated_fit`` job on the participant's server (see
``qstore_server.federated_kind``): the coordinator starts it with the round's task,
polls it, and reads the update from the job result. The participant trains in its
own job worker on its own dataset; only the task and the update travel.

If the coordinator gives up on a job (deadline passed, round over) it asks the server
to cancel it in the background, so a straggler stops wasting its node's CPU.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from qstore.errors import error
from qstore_client import AsyncClient

from .messages import RoundTask, Summary, Update

log = logging.getLogger(__name__)

FIT_KIND = "federated_fit"
SUMMARY_KIND = "federated_summary"
SECURE_KIND = "federated_secagg"
CANCEL_TIMEOUT_S = 2.0


class RemoteParticipant:
    """A ``qstore serve`` node at `url`. Requests time out after `request_timeout` seconds; the
    coordinator's round deadline bounds the whole exchange. Its summary includes rows per
    label only with `label_counts` (QUBO selection weighs them; nothing else needs them)."""

    def __init__(self, url: str, api_key: str | None = None, *, request_timeout: float = 30.0,
                 poll: tuple[float, float] = (0.02, 0.25), client: AsyncClient | None = None,
                 label_counts: bool = False):
        self.label_counts = label_counts
        self.url = url.rstrip("/")
        self.name = self.url
        self._client = client or AsyncClient(self.url, api_key=api_key, timeout=request_timeout,
                                             connect_timeout=min(5.0, request_timeout), retries=1)
        self._poll = poll
        self._cleanup: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"RemoteParticipant({self.url!r})"

    async def _run_job(self, kind: str, params: dict[str, Any]) -> Any:
        job = await self._client.start_job(kind, params)
        delay, cap = self._poll
        try:
            while not job.done:
                await asyncio.sleep(delay)
                delay = min(cap, delay * 1.5)  # short jobs answer fast, long ones are not hammered
                job = await self._client.job(job.id)
        except BaseException:  # deadline (cancellation) or transport failure: stop the straggler
            self._in_background(self._cancel(job.id))
            raise
        if job.state != "succeeded":
            raise job.error or error("job_failed", f"{self.url}: {kind} job {job.id} ended {job.state}")
        result = await self._client.job_result(job.id)
        self._in_background(self._delete(job.id))
        return result

    async def summary(self, dataset: str) -> Summary:
        params: dict[str, Any] = {"dataset": dataset, "counts": True} if self.label_counts else {"dataset": dataset}
        return Summary.from_wire(await self._run_job(SUMMARY_KIND, params))

    async def fit(self, task: RoundTask) -> Update:
        result = await self._run_job(FIT_KIND, task.to_wire())
        return Update.from_wire(result, task.params.shape[0], task.round)

    async def secure(self, message: dict[str, Any]) -> dict[str, Any]:
        """One stage of secure aggregation, run by the node's ``federated_secagg`` job kind."""
        if message.get("stage") == "train":
            message = {**message, "task": message["task"].to_wire()}
        result = await self._run_job(SECURE_KIND, message)
        if not isinstance(result, dict):
            raise error("invalid_argument", f"{self.url}: a secure aggregation answer must be a map")
        return result

    def _in_background(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)

    async def _cancel(self, job_id: str) -> None:
        try:
            await asyncio.wait_for(self._client.cancel_job(job_id), CANCEL_TIMEOUT_S)
            log.info("%s: cancelled abandoned job %s", self.url, job_id)
        except Exception as exc:  # noqa: BLE001  the node may be dead; that is why we gave up on it
            log.debug("%s: could not cancel job %s: %s", self.url, job_id, exc)

    async def _delete(self, job_id: str) -> None:
        try:
            await asyncio.wait_for(self._client.delete_job(job_id), CANCEL_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001  tidying up only
            log.debug("%s: could not delete finished job %s: %s", self.url, job_id, exc)

    async def close(self) -> None:
        if self._cleanup:
            await asyncio.wait(list(self._cleanup), timeout=CANCEL_TIMEOUT_S + 1)
        await self._client.close()
