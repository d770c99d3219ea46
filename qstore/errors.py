"""The engine raises the same error classes the client rebuilds from the wire."""
from qstore_client.errors import (  # noqa: F401
    ERROR_CODES, AlreadyExists, BackendError, Cancelled, Conflict, Forbidden, InsufficientStorage,
    InvalidArgument, LimitExceeded, NotFound, QStoreError, Unauthorized, Unavailable, UnsupportedMediaType, error,
)
