"""Tunneling search: look past the query's own region with WKB-shaped probability.

The vector space is partitioned into regions (the IVF coarse centroids once the index has
them, else k-means on a sample), kept in the collection's config. For a query q in region r₀
with radius ρ₀ (median member distance to its centroid), each far region r is entered with
probability T(r) = exp(−2·d_r / t), where d_r is q's distance to r's Voronoi cell in units
of ρ₀: the largest distance from q to the half-spaces {x closer to c_r than to c_j} over all
j (exact whenever one face is nearest; a lower bound otherwise).

Results are ranked by score; at most ``per_region`` (default ⌈top_k/2⌉) come from any one
region in a first pass, then the home region fills the rest, so every t returns
min(top_k, matching records). Everything here is a pure function; ``Collection`` holds the
regions, their members and the index.
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from qstore.errors import InvalidArgument

MAX_REGIONS = 256  # an explicit build_regions(n); the default count stops at 64
SAMPLE = 20_000
# Rebuild the regions once vectors written since the build reach this share of the vectors then.
DRIFT = 0.5


def check_strength(t: Any) -> float:
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise InvalidArgument(f"tunneling strength must be a number ≥ 0, got {t!r}", "invalid_tunneling")
    return float(t)


def check_per_region(per_region: Any, k: int) -> int:
    cap = per_region if per_region is not None else math.ceil(k / 2)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise InvalidArgument("per_region must be a positive integer", "invalid_argument")
    return cap


def default_regions(n: int) -> int:
    return int(np.clip(round(math.sqrt(n / 4)), 2, 64))


def fit(sample: np.ndarray, n_regions: int, metric: str, seed: int,
        centroids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centroids (k-means on ``sample`` unless given) and each region's radius."""
    if centroids is None:
        k = min(n_regions, len(sample))
        km = faiss.Kmeans(sample.shape[1], k, niter=25, seed=seed, spherical=metric == "cosine",
                          min_points_per_centroid=1)
        km.train(sample, init_centroids=_kmeans_pp(sample, k, np.random.default_rng(seed)))
        centroids = km.centroids
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    labels, dist = assign(sample, centroids)
    overall = float(np.median(dist))
    radii = np.array([float(np.median(dist[labels == r])) if (labels == r).any() else overall
                      for r in range(len(centroids))])
    radii[radii <= 0] = overall if overall > 0 else 1.0
    return centroids, radii


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


def assign(vecs: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vector's region (nearest centroid) and its distance to it."""
    d2 = (vecs * vecs).sum(1)[:, None] + (centroids * centroids).sum(1)[None, :] - 2 * vecs @ centroids.T
    labels = d2.argmin(1)
    return labels, np.sqrt(np.maximum(d2[np.arange(len(vecs)), labels], 0.0))


def stale(regions: dict[str, Any] | None, *, size: int, written: int, ivf_ready: bool) -> bool:
    """Whether the regions no longer describe the data. ``written`` counts vectors written
    since they were built (internal ids are never reused, so it is the id high-water mark's
    advance)."""
    if regions is None or "mark" not in regions:
        return True
    if ivf_ready and regions["requested"] is None and regions["source"] != "ivf":
        return True
    n = max(regions["n"], 1)
    return written >= DRIFT * n or size < n / 2


def centroid_gaps(centroids: np.ndarray) -> np.ndarray:
    """Distances between every two centroids (computed once per set of regions)."""
    c = centroids.astype(np.float64)
    return np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))


def cell_distances(q: np.ndarray, centroids: np.ndarray, gap: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """The query's region and its distance to every region's Voronoi cell (0 for its own)."""
    d2 = ((centroids.astype(np.float64) - q) ** 2).sum(1)
    gap = centroid_gaps(centroids) if gap is None else gap
    with np.errstate(divide="ignore", invalid="ignore"):
        # distance from q to the half-space {x: |x − c_r| ≤ |x − c_j|}, for every (r, j)
        face = (d2[:, None] - d2[None, :]) / (2.0 * gap)
    face[gap == 0] = -np.inf  # r against itself or a duplicate centroid: no constraint
    return int(d2.argmin()), np.maximum(face.max(1), 0.0)


def entry_probabilities(q: np.ndarray, centroids: np.ndarray, radii: np.ndarray, t: float,
                        gap: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """The query's region and T(r) = exp(−2·d_r/t) for every region (1 for its own)."""
    home, d = cell_distances(q, centroids, gap)
    probs = np.exp(-2.0 * d / radii[home] / t)
    probs[home] = 1.0
    return home, probs


def select(regions: list[int], home: int, k: int, cap: int) -> list[int]:
    """Positions to return from candidates ranked by score, given each one's region: at most
    ``cap`` per region first, then the home region fills the rest (then anything left, so the
    count is min(k, candidates))."""
    chosen: list[int] = []
    taken: Counter[int] = Counter()
    for i, r in enumerate(regions):
        if len(chosen) == k:
            break
        if taken[r] < cap:
            taken[r] += 1
            chosen.append(i)
    for home_first in (True, False):
        picked = set(chosen)
        for i, r in enumerate(regions):
            if len(chosen) >= k:
                break
            if i not in picked and (r == home or not home_first):
                chosen.append(i)
    return sorted(chosen)


class RegionMap:
    """Which region each live vector is in, kept current write by write at O(changed vectors ×
    regions), and each region's vectors, copied once after each change to that region (entering
    a region is then one matrix product)."""

    def __init__(self, regions: dict[str, Any], ids: np.ndarray, vecs: np.ndarray):
        self.centroids: np.ndarray = regions["centroids"]
        self.radii: np.ndarray = regions["radii"]
        self.gaps = centroid_gaps(self.centroids)
        self.region_of: dict[int, int] = {}
        self.members: list[set[int]] = [set() for _ in self.centroids]
        self._vectors: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(self.centroids)
        self.place(ids, vecs, np.empty(0, np.int64))

    def place(self, ids: np.ndarray, vecs: np.ndarray, removed: np.ndarray) -> None:
        for iid in removed.tolist():
            r = self.region_of.pop(iid, None)
            if r is not None:
                self.members[r].discard(iid)
                self._vectors[r] = None
        if len(ids):
            for iid, r in zip(ids.tolist(), assign(vecs, self.centroids)[0].tolist()):
                self.region_of[iid] = r
                self.members[r].add(iid)
                self._vectors[r] = None

    def vectors(self, r: int, reconstruct: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Region r's ids and vectors. Concurrent readers may both fill the copy; they store equal values."""
        cached = self._vectors[r]
        if cached is None:
            ids = np.fromiter(self.members[r], np.int64, len(self.members[r]))
            cached = (ids, reconstruct(ids))
            self._vectors[r] = cached
        return cached

    def entry_probabilities(self, q: np.ndarray, t: float) -> tuple[int, np.ndarray]:
        return entry_probabilities(q, self.centroids, self.radii, t, self.gaps)
