"""Input checks shared by every entry point. Each raises a typed error and touches nothing."""
from __future__ import annotations

import math
import re
from typing import Any

import faiss
import numpy as np

from qstore.errors import InvalidArgument

MAX_ID_BYTES = 256
MAX_TOP_K = 10_000
MAX_DIM = 65_536
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def check_name(name: Any, what: str = "collection") -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(f"{what} name {name!r} must be 1-128 characters of letters, digits, "
                              "'_', '.', '-' and start with a letter or digit", "invalid_name")
    return name


def check_id(rid: Any) -> str:
    if not isinstance(rid, str):
        raise InvalidArgument(f"ids must be strings, got {type(rid).__name__}", "invalid_id")
    size = len(rid.encode())
    if not 1 <= size <= MAX_ID_BYTES:
        raise InvalidArgument(f"id must be 1-{MAX_ID_BYTES} UTF-8 bytes, got {size}", "invalid_id")
    return rid


def check_ids(ids: Any, *, unique: bool = True) -> list[str]:
    if isinstance(ids, str) or not hasattr(ids, "__iter__"):
        raise InvalidArgument("ids must be a list of strings", "invalid_id")
    out = [check_id(i) for i in ids]
    if unique and len(set(out)) != len(out):
        dup = next(i for i in out if out.count(i) > 1)
        raise InvalidArgument(f"id {dup!r} appears twice in one batch", "invalid_id")
    return out


def _row_norm2(arr: np.ndarray) -> float | None:
    """FAISS's squared norm of a lone contiguous row (a query), else None. Right after a search
    has flushed the caches each numpy call costs ~10-17 µs, this ~5: one number settles
    finiteness (unless entries are huge: then it overflows and numpy decides) and zero length."""
    if arr.shape[0] == 1 and arr.flags.c_contiguous:
        return float(faiss.fvec_norm_L2sqr(faiss.swig_ptr(arr), arr.shape[1]))
    return None


def check_shape(vectors: Any, dim: int, n: int | None = None) -> np.ndarray:
    """Return an (n, dim) float32 array or raise dimension_mismatch / invalid_vector; the values
    themselves are ``check_vectors``'s to judge."""
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"vectors must be numeric arrays: {exc}", "invalid_vector") from None
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidArgument(f"expected vectors of dimension {dim}, got shape {tuple(arr.shape)}",
                              "dimension_mismatch")
    if n is not None and arr.shape[0] != n:
        raise InvalidArgument(f"got {arr.shape[0]} vectors for {n} ids", "dimension_mismatch")
    return arr


def check_vectors(vectors: Any, dim: int, *, metric: str, n: int | None = None) -> np.ndarray:
    """Return an (n, dim) float32 array or raise dimension_mismatch / invalid_vector."""
    return check_values(check_shape(vectors, dim, n), metric)


def check_values(arr: np.ndarray, metric: str) -> np.ndarray:
    """``arr`` (from ``check_shape``) unchanged, or invalid_vector for NaN, Inf, or a zero row
    under cosine."""
    norm2 = _row_norm2(arr)
    if not (norm2 is not None and math.isfinite(norm2)) and not np.isfinite(arr).all():
        raise InvalidArgument("vectors contain NaN or Inf", "invalid_vector")
    if metric == "cosine" and arr.shape[0] and (
            norm2 == 0 if norm2 is not None else (np.linalg.norm(arr, axis=1) == 0).any()):
        raise InvalidArgument("a zero vector has no direction under the cosine metric", "invalid_vector")
    return arr


def _check_value(v: Any, path: str, depth: int = 0) -> None:
    if v is None or isinstance(v, (str, bool, int)):
        if isinstance(v, int) and not isinstance(v, bool) and not -(2**63) <= v < 2**64:
            raise InvalidArgument(f"metadata {path}: integer out of 64-bit range", "invalid_metadata")
        return
    if isinstance(v, float):
        if not math.isfinite(v):
            raise InvalidArgument(f"metadata {path}: NaN/Inf cannot be stored", "invalid_metadata")
        return
    if isinstance(v, list) and depth == 0:
        for i, x in enumerate(v):
            _check_value(x, f"{path}[{i}]", 1)
        return
    raise InvalidArgument(f"metadata {path}: {type(v).__name__} is not storable; use str, int, float, "
                          "bool, None or a list of those", "invalid_metadata")


def check_metadata(md: Any) -> dict[str, Any]:
    if md is None:
        return {}
    if not isinstance(md, dict):
        raise InvalidArgument(f"metadata must be a map, got {type(md).__name__}", "invalid_metadata")
    for k, v in md.items():
        if not isinstance(k, str):
            raise InvalidArgument(f"metadata keys must be strings, got {k!r}", "invalid_metadata")
        _check_value(v, repr(k))
    return dict(md)


def check_metadata_list(metadata: Any, n: int) -> list[dict[str, Any]]:
    if metadata is None:
        return [{} for _ in range(n)]
    if isinstance(metadata, dict) or not isinstance(metadata, (list, tuple)) or len(metadata) != n:
        raise InvalidArgument(f"metadata must be a list of {n} maps (one per id)", "invalid_metadata")
    return [check_metadata(m) for m in metadata]


def check_top_k(top_k: Any) -> int:
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or top_k <= 0:
        raise InvalidArgument(f"top_k must be a positive integer, got {top_k!r}", "invalid_top_k")
    if top_k > MAX_TOP_K:
        raise InvalidArgument(f"top_k {top_k} is above the limit of {MAX_TOP_K}", "invalid_top_k")
    return int(top_k)


def check_dim(dim: Any) -> int:
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or not 1 <= dim <= MAX_DIM:
        raise InvalidArgument(f"dim must be an integer in 1..{MAX_DIM}, got {dim!r}", "invalid_argument")
    return int(dim)


def check_coherence_time(t: Any) -> float | None:
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float, np.floating, np.integer)) \
            or not math.isfinite(t) or t <= 0:
        raise InvalidArgument(f"coherence_time must be a positive number of seconds, got {t!r}",
                              "invalid_coherence_time")
    return float(t)


def check_context(context: Any) -> str | None:
    if context is not None and not isinstance(context, str):
        raise InvalidArgument("context must be a string", "invalid_argument")
    return context


def check_ef(ef: Any) -> int | None:
    if ef is not None and (not isinstance(ef, int) or isinstance(ef, bool) or ef < 1):
        raise InvalidArgument("ef must be a positive integer", "invalid_argument")
    return ef
