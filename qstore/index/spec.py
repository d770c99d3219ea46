"""Index specifications: validation, defaults and the FAISS objects they build."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import faiss
import numpy as np

from qstore.errors import InvalidArgument

Metric = Literal["cosine", "l2", "ip"]
METRICS = ("cosine", "l2", "ip")

_DEFAULTS: dict[str, dict[str, int]] = {
    "flat": {},
    "hnsw": {"m": 32, "ef_construction": 200, "ef_search": 64},
    "ivf": {"nlist": 256, "nprobe": 8, "train_size": 0},  # 0: 39·nlist, FAISS's minimum sample
}


@dataclass(frozen=True)
class IndexSpec:
    type: str = "hnsw"
    m: int = 32
    ef_construction: int = 200
    ef_search: int = 64
    nlist: int = 256
    nprobe: int = 8
    train_size: int = 0

    @classmethod
    def parse(cls, spec: dict[str, Any] | None) -> IndexSpec:
        spec = dict(spec or {"type": "hnsw"})
        kind = spec.pop("type", "hnsw")
        if kind not in _DEFAULTS:
            raise InvalidArgument(f"index type {kind!r} is not one of flat, hnsw, ivf", "invalid_index")
        allowed = _DEFAULTS[kind]
        unknown = set(spec) - set(allowed)
        if unknown:
            raise InvalidArgument(f"unknown {kind} index parameter(s) {sorted(unknown)}; "
                                  f"allowed: {sorted(allowed)}", "invalid_index")
        values = {**allowed, **spec}
        for key, val in values.items():
            if not isinstance(val, int) or isinstance(val, bool) or val < (0 if key == "train_size" else 1):
                raise InvalidArgument(f"index parameter {key} must be a positive integer, got {val!r}",
                                      "invalid_index")
        return cls(type=kind, **values)

    def to_dict(self) -> dict[str, Any]:
        keep = {"type"} | set(_DEFAULTS[self.type])
        return {k: v for k, v in asdict(self).items() if k in keep}

    @property
    def ivf_train_size(self) -> int:
        return self.train_size or 39 * self.nlist


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise InvalidArgument(f"metric {metric!r} is not one of cosine, l2, ip", "invalid_metric")
    return metric


def faiss_metric(metric: str) -> int:
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def build_flat(dim: int, metric: str) -> faiss.Index:
    base = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(base)


def build_hnsw(dim: int, metric: str, spec: IndexSpec) -> faiss.Index:
    hnsw = faiss.IndexHNSWFlat(dim, spec.m, faiss_metric(metric))
    hnsw.hnsw.efConstruction = spec.ef_construction
    hnsw.hnsw.efSearch = spec.ef_search
    return faiss.IndexIDMap2(hnsw)


def build_ivf(dim: int, metric: str, spec: IndexSpec, train: np.ndarray) -> faiss.Index:
    quantizer = faiss.IndexFlatL2(dim) if metric == "l2" else faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, spec.nlist, faiss_metric(metric))
    ivf.train(train)
    ivf.nprobe = spec.nprobe
    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct and remove by our ids
    return ivf


def search_params(index: faiss.Index, spec: IndexSpec, selector: faiss.IDSelector | None,
                  ef: int | None, nprobe: int | None = None) -> faiss.SearchParameters | None:
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(sel=selector, nprobe=min(nprobe or spec.nprobe, spec.nlist))
    if spec.type == "hnsw":
        return faiss.SearchParametersHNSW(sel=selector, efSearch=max(ef or spec.ef_search, 1))
    return faiss.SearchParameters(sel=selector) if selector is not None else None
