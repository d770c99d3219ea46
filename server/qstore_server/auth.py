"""API keys: bearer tokens checked in constant time, with an optional read-only tier."""
from __future__ import annotations

import hmac

from qstore_client.errors import error


class KeyRing:
    """Write keys may call everything; read-only keys only calls that change nothing.

    No keys at all means authentication is off (the server then binds loopback only,
    unless told otherwise).
    """

    def __init__(self, write_keys: frozenset[str], read_keys: frozenset[str]):
        self._write = [k.encode() for k in sorted(write_keys)]
        self._read = [k.encode() for k in sorted(read_keys - write_keys)]

    @property
    def enabled(self) -> bool:
        return bool(self._write or self._read)

    def access(self, authorization: str | None) -> str:
        """"write" or "read" for an `Authorization: Bearer <key>` header; `unauthorized` otherwise."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise error("unauthorized", "send an API key as 'Authorization: Bearer <key>'")
        candidate = token.strip().encode()
        # Compare against every key, without stopping early, so timing reveals nothing.
        write = read = False
        for key in self._write:
            write |= hmac.compare_digest(candidate, key)
        for key in self._read:
            read |= hmac.compare_digest(candidate, key)
        if write:
            return "write"
        if read:
            return "read"
        raise error("unauthorized", "the API key is not valid")
