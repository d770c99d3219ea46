"""Q-Store: a quantum-native vector database with an embedded quantum training engine."""
from qstore import errors as _errors
from qstore.collection import Collection
from qstore.database import Database
from qstore.errors import *  # noqa: F403 - the error tree, listed once in qstore.errors
from qstore_client.types import Branch, Hit, Measurement, Page, Record

__version__ = "0.1.0"
__all__ = ["Branch", "Collection", "Database", "Hit", "Measurement", "Page", "Record", *_errors.__all__]
