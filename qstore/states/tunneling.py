"""Tunneling search: look past the query's own region with WKB-shaped probability.

The vector space is partitioned into regions (the IVF coarse centroids when the index
has them, else k-means on a sample), kept in the collection's config. For a query q in
region r₀ with radius ρ₀ (median member distance to its centroid), each far region r is
entered with probability

    T(r) = exp(−2·d_r / t),   d_r = (|q−c_r|² − |q−c₀|²) / (2·|c_r−c₀|) / ρ₀

where d_r is q's distance to the bisecting hyperplane between the two Voronoi cells,
i.e. to r's cell boundary as seen from r₀, in units of ρ₀. Candidates are the plain
neighbourhood plus the best members of every entered region; results are ranked by
score with at most ``per_region`` (default ⌈top_k/2⌉) from any one region.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np

from qstore.errors import InvalidArgument
from qstore_client.types import Hit

if TYPE_CHECKING:
    from qstore.collection import Collection

MAX_REGIONS = 64
SAMPLE = 20_000


def check_strength(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise InvalidArgument(f"tunneling strength must be a number ≥ 0, got {t!r}", "invalid_tunneling")
    return float(t)


def default_regions(n: int) -> int:
    return int(np.clip(round(math.sqrt(n / 4)), 2, MAX_REGIONS))


def build_regions(col: Collection, n_regions: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Centroids and radii for the collection's current vectors (runs in a worker thread)."""
    ids = col.index.ids()
    if len(ids) < 2:
        raise InvalidArgument("tunneling needs at least two stored vectors", "invalid_tunneling")
    rng = np.random.default_rng(seed)
    sample = ids if len(ids) <= SAMPLE else rng.choice(ids, SAMPLE, replace=False)
    vecs = col.index.vectors(np.sort(sample))
    inner = getattr(col.index._index, "quantizer", None)
    if n_regions is None and inner is not None:
        centroids, source = inner.reconstruct_n(0, inner.ntotal), "ivf"
    else:
        k = min(n_regions or default_regions(len(ids)), len(vecs))
        km = faiss.Kmeans(col.dim, k, niter=25, seed=seed, spherical=col.metric == "cosine",
                            min_points_per_centroid=1)
        km.train(vecs, init_centroids=_kmeans_pp(vecs, k, rng))
        centroids, source = km.centroids.copy(), "kmeans"
    labels, dist = _assign(vecs, centroids)
    overall = float(np.median(dist))
    radii = np.array([float(np.median(dist[labels == r])) if (labels == r).any() else overall
                      for r in range(len(centroids))])
    radii[radii <= 0] = overall if overall > 0 else 1.0
    return {"centroids": centroids.astype(np.float32), "radii": radii, "n": int(len(ids)), "source": source}


def _kmeans_pp(vecs: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: FAISS's random seeding often merges well-separated clusters."""
    centers = [vecs[rng.integers(len(vecs))]]
    d2 = ((vecs - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        nxt = vecs[rng.choice(len(vecs), p=d2 / total)] if total > 0 else vecs[rng.integers(len(vecs))]
        centers.append(nxt)
        d2 = np.minimum(d2, ((vecs - nxt) ** 2).sum(1))
    return np.ascontiguousarray(centers, dtype=np.float32)


def _assign(vecs: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d2 = (vecs * vecs).sum(1)[:, None] + (centroids * centroids).sum(1)[None, :] - 2 * vecs @ centroids.T
    labels = d2.argmin(1)
    return labels, np.sqrt(np.maximum(d2[np.arange(len(vecs)), labels], 0.0))


def stale(col: Collection) -> bool:
    r = col.regions
    return r is None or not (r["n"] / 2 <= col.index.size <= r["n"] * 2)


def entry_probabilities(q: np.ndarray, centroids: np.ndarray, radii: np.ndarray, t: float) -> tuple[int, np.ndarray]:
    """The query's region and T(r) for every region (1 for its own)."""
    d2 = ((centroids - q) ** 2).sum(1)
    home = int(d2.argmin())
    gap = np.linalg.norm(centroids - centroids[home], axis=1)
    gap[home] = 1.0
    d = (d2 - d2[home]) / (2.0 * gap) / radii[home]
    probs = np.exp(-2.0 * np.maximum(d, 0.0) / t)
    probs[home] = 1.0
    return home, probs


def _members(col: Collection) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[int, int]]:
    """Per region, its live ids and their vectors (a copy: entering a region is then one matrix
    product), and each id's region. Cached until the index changes."""
    key = (col.index.applied_seq, col.index.size, id(col.regions))
    cached = getattr(col, "_region_members", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]
    ids = col.index.ids()
    vecs = col.index.vectors(ids) if len(ids) else np.empty((0, col.dim), np.float32)
    labels = _assign(vecs, col.regions["centroids"])[0] if len(ids) else np.empty(0, int)
    members = [(ids[labels == r], vecs[labels == r]) for r in range(len(col.regions["centroids"]))]
    region_of = dict(zip(ids.tolist(), labels.tolist()))
    col._region_members = (key, members, region_of)
    return members, region_of


def search(col: Collection, q: np.ndarray, k: int, pred: Any, context: str | None, t: float,
           seed: int | None, per_region: int | None, now: float) -> list[Hit]:
    cap = per_region if per_region is not None else math.ceil(k / 2)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidArgument("per_region must be a positive integer", "invalid_argument")
    rng = np.random.default_rng(seed)
    with col._lock.read():
        due = col._due(now)
        allowed = col.candidates(pred, context, due)
        hidden = col._hidden_iids(due)
        fan = min(col._max_branches, 8) if col._superposed else 1
        width = k * fan
        scores, iids = col._raw_search(q[None, :], width, allowed, hidden if allowed is None else None, None)
        cand_s, cand_i = [scores[0]], [iids[0]]
        regions = col.regions
        home, probs = entry_probabilities(q, regions["centroids"], regions["radii"], t)
        entered = [r for r in range(len(probs)) if r != home and rng.random() < probs[r]]
        members, region_of = _members(col)
        for r in entered:
            ids, vecs = members[r]
            if allowed is not None or hidden is not None:
                keep = np.isin(ids, allowed) if allowed is not None else ~np.isin(ids, hidden)
                ids, vecs = ids[keep], vecs[keep]
            if not len(ids):
                continue
            sims = col.index.similarity(q[None, :], vecs)[0]
            top = np.argsort(-sims)[:cap * fan]
            cand_s.append(sims[top])
            cand_i.append(ids[top])
        hits = col._rank(q, np.concatenate(cand_s), np.concatenate(cand_i), len(col._entries), context, due)
        best_iid = {}
        for s, i in zip(np.concatenate(cand_s).tolist(), np.concatenate(cand_i).tolist()):
            rid = col._owner.get(i)
            if rid is not None and (rid not in best_iid or s > best_iid[rid][0]):
                best_iid[rid] = (s, i)
        taken: dict[int, int] = {}
        out = []
        for hit in hits:
            region = region_of.get(best_iid[hit.id][1], home)
            if taken.get(region, 0) >= cap:
                continue
            taken[region] = taken.get(region, 0) + 1
            out.append(hit)
            if len(out) == k:
                break
        return out
