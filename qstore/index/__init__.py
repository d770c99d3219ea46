"""FAISS indexes are derived state: rebuilt from snapshots plus the LMDB change sequence."""
from qstore.index.filters import compile_filter
from qstore.index.spec import IndexSpec, Metric
from qstore.index.vector_index import VectorIndex

__all__ = ["IndexSpec", "Metric", "VectorIndex", "compile_filter"]
