"""The engine's one import path for errors: the classes the client rebuilds from the wire.

Raise them one way, by stable code: ``raise error("invalid_features", "...")``; the code picks
the class (``ERROR_CODES``), so the same failure has the same class and code on both sides.
"""
from qstore_client.errors import (
    ERROR_CODES,
    AlreadyExists,
    BackendError,
    Cancelled,
    Conflict,
    Forbidden,
    InvalidArgument,
    LimitExceeded,
    NotFound,
    QStoreError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
    error,
)

__all__ = [
    "ERROR_CODES", "AlreadyExists", "BackendError", "Cancelled", "Conflict", "Forbidden", "InvalidArgument",
    "LimitExceeded", "NotFound", "QStoreError", "Unauthorized", "Unavailable", "UnsupportedMediaType", "error",
]
