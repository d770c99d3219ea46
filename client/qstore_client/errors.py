"""One error tree for embedded and remote use.

Every error carries a stable ``code`` (the protocol's ``error.code``) and the HTTP
status the server answers with. The client rebuilds the same class from the code,
so ``except qstore_client.NotFound`` works the same in both modes.
"""
from __future__ import annotations

__all__ = [
    "ERROR_CODES", "AlreadyExists", "BackendError", "Cancelled", "Conflict", "Forbidden", "InsufficientStorage",
    "InvalidArgument", "LimitExceeded", "NotFound", "QStoreError", "TooManyRequests", "Unauthorized", "Unavailable",
    "UnsupportedMediaType", "error",
]


class QStoreError(Exception):
    """Base of every Q-Store error. ``code`` is stable; ``message`` says what to do."""

    status = 500
    default_code = "internal"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"

    def to_payload(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidArgument(QStoreError):
    status = 400
    default_code = "invalid_argument"


class Unauthorized(QStoreError):
    status = 401
    default_code = "unauthorized"


class Forbidden(QStoreError):
    status = 403
    default_code = "forbidden"


class NotFound(QStoreError):
    status = 404
    default_code = "not_found"


class AlreadyExists(QStoreError):
    status = 409
    default_code = "already_exists"


class Conflict(QStoreError):
    status = 409
    default_code = "conflict"


class LimitExceeded(QStoreError):
    status = 413
    default_code = "limit_exceeded"


class UnsupportedMediaType(QStoreError):
    status = 415
    default_code = "unsupported_media_type"


class BackendError(QStoreError):
    """A quantum backend (cirq, IonQ) failed or refused the work."""

    status = 502
    default_code = "backend_error"


class InsufficientStorage(QStoreError):
    """The disk (or the LMDB map) is full: nothing was written; retry once space is freed."""

    status = 507
    default_code = "insufficient_storage"


class Unavailable(QStoreError):
    status = 503
    default_code = "unavailable"


class TooManyRequests(QStoreError):
    """The server is at a capacity limit (e.g. its job queue); retry after the reply's Retry-After."""

    status = 429
    default_code = "too_many_requests"


class Cancelled(QStoreError):
    status = 409
    default_code = "cancelled"


# Every stable code and the class that carries it. The protocol documents this table.
ERROR_CODES: dict[str, type[QStoreError]] = {
    # generic
    "internal": QStoreError,
    "invalid_argument": InvalidArgument,
    "malformed_body": InvalidArgument,
    "missing_field": InvalidArgument,
    "unknown_field": InvalidArgument,
    "unsupported_media_type": UnsupportedMediaType,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "limit_exceeded": LimitExceeded,
    "unavailable": Unavailable,
    "insufficient_storage": InsufficientStorage,
    "invalid_backup": InvalidArgument,
    "too_many_requests": TooManyRequests,
    # records and collections
    "dimension_mismatch": InvalidArgument,
    "invalid_vector": InvalidArgument,
    "invalid_id": InvalidArgument,
    "invalid_metadata": InvalidArgument,
    "invalid_filter": InvalidArgument,
    "filter_untranslatable": InvalidArgument,
    "invalid_store": InvalidArgument,
    "invalid_top_k": InvalidArgument,
    "invalid_index": InvalidArgument,
    "invalid_metric": InvalidArgument,
    "invalid_name": InvalidArgument,
    "invalid_cursor": InvalidArgument,
    "not_found": NotFound,
    "collection_not_found": NotFound,
    "collection_exists": AlreadyExists,
    # quantum primitives
    "invalid_amplitudes": InvalidArgument,
    "context_not_found": NotFound,
    "invalid_state": InvalidArgument,
    "invalid_coherence_time": InvalidArgument,
    "invalid_strength": InvalidArgument,
    "invalid_tunneling": InvalidArgument,
    # circuits and training
    "unknown_backend": InvalidArgument,
    "too_many_qubits": LimitExceeded,
    "invalid_parameters": InvalidArgument,
    "invalid_features": InvalidArgument,
    "invalid_labels": InvalidArgument,
    "empty_dataset": InvalidArgument,
    "unknown_optimizer": InvalidArgument,
    "unknown_gradient": InvalidArgument,
    "unknown_strategy": InvalidArgument,
    "checkpoint_mismatch": Conflict,
    "invalid_checkpoint": InvalidArgument,
    "budget_exceeded": BackendError,
    "backend_error": BackendError,
    "job_failed": BackendError,
    "job_timeout": BackendError,
    "cancelled": Cancelled,
    "conflict": Conflict,
    "already_exists": AlreadyExists,
    # server
    "method_not_allowed": InvalidArgument,  # sent with HTTP 405
    "unknown_job_kind": InvalidArgument,
}


def error(code: str, message: str) -> QStoreError:
    """Build the error for a stable code (unknown codes become a plain QStoreError)."""
    cls = ERROR_CODES.get(code, QStoreError)
    return cls(message, code=code)
