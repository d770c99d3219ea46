"""The coordinator's side of one secure-aggregation round: relay the four stages, unmask the sum.

``secure_sum`` drives ``secagg``'s stages over participants that offer ``secure(message)``
(``LocalParticipant``, ``RemoteParticipant``). Each stage waits for everyone still in, up
to the round's deadline; whoever fails or is late drops out, and the round goes on while
at least t remain. What the coordinator holds at the end is the sum only.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qstore.errors import error

from . import secagg
from .messages import RoundTask

log = logging.getLogger(__name__)


@dataclass
class SecureResult:
    """`total` is Σ of the survivors' summand vectors (None if the round fell below t)."""

    total: np.ndarray | None
    survivors: list[str]
    excluded: dict[str, str]
    threshold: int
    reason: str | None = None
    bytes_in: dict[str, int] = field(default_factory=dict)
    bytes_out: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)


def _size(value: Any) -> int:
    """Payload bytes of a message (arrays and bytes by length; the framing is not counted)."""
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if isinstance(value, (bytes, str)):
        return len(value)
    if isinstance(value, dict):
        return sum(_size(k) + _size(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value)
    if isinstance(value, RoundTask):
        return _size(value.to_wire())
    return 8


async def secure_sum(participants: list[Any], task: Callable[[Any], RoundTask], config: secagg.SecAggConfig,
                     weighting: str, bound: float | None, deadline_s: float,
                     reason: Callable[[BaseException], str]) -> SecureResult:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_s
    session = uuid.uuid4().hex
    index = {p.name: i + 1 for i, p in enumerate(participants)}
    by_index = {i: p for p in participants for i in [index[p.name]]}
    t = config.t(len(participants))
    result = SecureResult(None, [], {}, t, bytes_in={p.name: 0 for p in participants},
                          bytes_out={p.name: 0 for p in participants})

    async def stage(name: str, messages: dict[int, dict[str, Any]],
                    check: Callable[[int, Any], Any]) -> dict[int, Any]:
        """Send each message, keep the checked answers that arrive before the deadline."""
        calls = {}
        for i, message in messages.items():
            p = by_index[i]
            result.bytes_out[p.name] += _size(message)
            calls[asyncio.ensure_future(p.secure({"stage": name, **message}))] = i
        answers: dict[int, Any] = {}
        pending = set(calls)
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                i = calls[fut]
                name_i = by_index[i].name
                try:
                    answer = fut.result()
                    result.bytes_in[name_i] += _size(answer)
                    answers[i] = check(i, answer)
                except Exception as exc:  # noqa: BLE001  one participant's failure drops it, never the round
                    result.excluded[name_i] = f"{name}: {reason(exc)}"
                    log.warning("secure aggregation: %s dropped at %s: %s", name_i, name, result.excluded[name_i])
        for fut in pending:
            fut.cancel()
            result.excluded[by_index[calls[fut]].name] = f"{name}: late: no answer within the deadline"
        await asyncio.gather(*pending, return_exceptions=True)
        result.stages[name] = len(answers)
        return answers

    def short(name: str, have: int) -> SecureResult:
        result.reason = (f"secure aggregation: {have} participant(s) left after {name}, fewer than the "
                         f"threshold t={t}; nothing can be unmasked, the round is skipped")
        log.warning(result.reason)
        return result

    # 1. train and advertise keys
    def check_keys(i: int, a: Any) -> tuple[bytes, bytes]:
        if not isinstance(a, dict) or a.get("index") != i:
            raise error("invalid_argument", "advertised keys for another index")
        return secagg._bytes(a.get("c_pk"), "c_pk", 32), secagg._bytes(a.get("s_pk"), "s_pk", 32)

    start = {index[p.name]: {"task": task(p), "secagg": secagg.start_message(
        session, index[p.name], t, config.frac_bits, weighting, bound)} for p in participants}
    keys = await stage("train", start, check_keys)
    if len(keys) < t:
        return short("train", len(keys))
    # 2. share keys
    table = {str(i): {"c_pk": c, "s_pk": s} for i, (c, s) in sorted(keys.items())}

    def check_shares(i: int, a: Any) -> dict[int, bytes]:
        shares = secagg._indexed(a.get("shares") if isinstance(a, dict) else None, "shares")
        if set(shares) != set(keys) - {i}:
            raise error("invalid_argument", "shares for the wrong participants")
        return {j: secagg._bytes(v, "share") for j, v in shares.items()}

    shared = await stage("share_keys", {i: {"session": session, "keys": table} for i in keys}, check_shares)
    if len(shared) < t:
        return short("share_keys", len(shared))
    u2 = set(shared)
    # 3. masked input: each gets the ciphertexts addressed to it by the others in U2
    length: dict[int, int] = {}

    def check_masked(i: int, a: Any) -> np.ndarray:
        y = a.get("y") if isinstance(a, dict) else None
        if not isinstance(y, np.ndarray) or y.dtype != np.uint64 or y.ndim != 1:
            raise error("invalid_argument", "a masked input is a uint64 vector")
        length[i] = len(y)
        return y

    inbox = {i: {"session": session, "shares": {str(j): shared[j][i] for j in sorted(u2) if j != i}} for i in u2}
    masked = await stage("masked_input", inbox, check_masked)
    if len(set(length.values())) > 1:
        raise error("invalid_argument", "secure aggregation: masked inputs differ in length")
    if len(masked) < t:
        return short("masked_input", len(masked))
    # 4. unmask
    survivors = sorted(masked)
    answers = await stage("unmask", {i: {"session": session, "survivors": survivors} for i in survivors},
                          lambda i, a: a if isinstance(a, dict) else {})
    if len(answers) < t:
        return short("unmask", len(answers))
    result.total = secagg.unmask_sum(session, t, next(iter(length.values())), keys, u2, masked, answers)
    result.survivors = [by_index[i].name for i in survivors]
    for name in result.survivors:
        result.excluded.pop(name, None)  # dropped at unmask, yet its input counts: not excluded
    return result
