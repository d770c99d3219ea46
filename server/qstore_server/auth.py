"""API keys with scopes: bearer tokens checked in constant time, and the rule that says which
scopes may call which operation.

Scopes (the table is in docs/PROTOCOL.md, under Authentication):
  read       calls that change nothing (queries, reads, job status), raw rows included;
  write      read, plus calls that add or change data and start jobs;
  admin      write, plus calls that destroy in bulk (drop a collection, delete a checkpoint, sweep);
  federated  only what a federated coordinator needs: job kinds, and the federated_fit,
             federated_summary and federated_secagg jobs (start, status, result, cancel,
             delete). Never raw rows.
Authorisation fails closed: an operation the table does not name is refused.
"""
from __future__ import annotations

import hmac
from collections.abc import Mapping

from qstore_client.errors import error
from qstore_client.protocol import Op

SCOPES = ("read", "write", "admin", "federated")
IMPLIES = {"read": {"read"}, "write": {"read", "write"}, "admin": {"read", "write", "admin"},
           "federated": {"federated"}}
ALL = frozenset(SCOPES)
FEDERATED_KINDS = frozenset({"federated_fit", "federated_summary", "federated_secagg"})


def expand(scopes: frozenset[str] | set[str]) -> frozenset[str]:
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown key scope(s) {sorted(unknown)}; choose from {', '.join(SCOPES)}")
    return frozenset(s for scope in scopes for s in IMPLIES[scope])


def allows(scopes: frozenset[str], op: Op | None) -> bool:
    """Whether keys of (expanded) `scopes` may call `op`; None (no such operation) never."""
    if op is None:
        return False
    return op.scope == "public" or op.scope in scopes or (op.federated and "federated" in scopes)


def check_job_kind(scopes: frozenset[str], op: Op, kind: str) -> None:
    """A key that reaches a job operation only through its federated scope reaches only federated jobs."""
    if op.scope not in scopes and kind not in FEDERATED_KINDS:
        raise error("forbidden", f"a federated API key reaches only {sorted(FEDERATED_KINDS)} jobs, not {kind!r}")


class KeyRing:
    """Keys and their scopes. No keys at all means authentication is off: every caller has every
    scope (the server then binds loopback only and checks Host, unless told otherwise)."""

    def __init__(self, keys: Mapping[str, frozenset[str]]):
        self._keys = [(k.encode(), expand(scopes)) for k, scopes in sorted(keys.items())]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def scopes(self, authorization: str | None) -> frozenset[str]:
        """The scopes of an `Authorization: Bearer <key>` header; `unauthorized` if it names no key."""
        if not self._keys:
            return ALL
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise error("unauthorized", "send an API key as 'Authorization: Bearer <key>'")
        candidate = token.strip().encode("utf-8", "surrogateescape")
        # Compare against every key, without stopping early, so timing reveals nothing.
        found: frozenset[str] | None = None
        for key, scopes in self._keys:
            if hmac.compare_digest(candidate, key):
                found = scopes
        if found is None:
            raise error("unauthorized", "the API key is not valid")
        return found
