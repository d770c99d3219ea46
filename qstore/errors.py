"""The engine's one import path for errors: the classes the client rebuilds from the wire.

Raise them one way, by stable code: ``raise error("invalid_features", "...")``; the code picks
the class (``ERROR_CODES``), so the same failure has the same class and code on both sides.
"""
from collections.abc import Callable
from typing import Any, TypeVar

from qstore_client import errors as _client
from qstore_client.errors import *  # noqa: F403 - one error tree, defined beside the wire codec
from qstore_client.errors import error

__all__ = [*_client.__all__, "construct"]

T = TypeVar("T")


def construct(cls: Callable[..., T], options: dict[str, Any], what: str, code: str = "invalid_argument") -> T:
    """``cls(**options)`` for the registries that build things by name: an unknown or missing
    option (the constructor's ``TypeError``) becomes a typed error naming ``what``."""
    try:
        return cls(**options)
    except TypeError as exc:
        raise error(code, f"bad options {sorted(options)} for {what}: {exc}") from None
