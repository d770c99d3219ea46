"""Q-Store: a quantum-native vector database with an embedded quantum training engine."""
from qstore.collection import Collection
from qstore.database import Database
from qstore.errors import (
    AlreadyExists, BackendError, Conflict, Forbidden, InsufficientStorage, InvalidArgument, LimitExceeded, NotFound,
    QStoreError, Unauthorized, Unavailable,
)
from qstore_client.types import Branch, Hit, Measurement, Page, Record

__version__ = "0.1.0"
__all__ = [
    "AlreadyExists", "BackendError", "Branch", "Collection", "Conflict", "Database", "Forbidden", "Hit",
    "InsufficientStorage", "InvalidArgument", "LimitExceeded", "Measurement", "NotFound", "Page", "QStoreError", "Record",
    "Unauthorized", "Unavailable",
]
