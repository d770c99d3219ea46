"""LMDB is the source of truth: one environment, named tables, one group-commit writer."""
from qstore.storage.environment import Storage, WriteContext, scan

__all__ = ["Storage", "WriteContext", "scan"]
