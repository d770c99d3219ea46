"""Q-Store server: the embedded engine behind the msgpack-over-HTTP protocol (docs/PROTOCOL.md)."""
from __future__ import annotations

from typing import Any

from .config import ServerConfig

__version__ = "0.1.0"
__all__ = ["create_app", "ServerConfig", "__version__"]


def __getattr__(name: str) -> Any:
    # `create_app` pulls in the engine (FAISS, LMDB, cirq); `--help` and argument errors should not wait for it.
    if name == "create_app":
        from .app import create_app
        return create_app
    raise AttributeError(f"module 'qstore_server' has no attribute {name!r}")
