"""A collection whose records live in a Qdrant store: the same API and the same quantum
primitives (``qstore.states``) as the LMDB collection, with no state of its own beyond its
configuration, so several Q-Store servers can serve it at once.

Each operation reads the documents it needs (one request), hands them to the pure primitive,
and writes what comes back in one ``batch_update_points`` request. Writes through this
process are serialised by a lock; writes through different servers to the same record race
(last writer wins: Qdrant has no compare-and-set), see docs/STORES.md.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from qdrant_client import models

from qstore import records, validation
from qstore.errors import InvalidArgument, NotFound
from qstore.records import Doc
from qstore.states import decoherence, entanglement, measurement, superposition
from qstore.states import tunneling as tunnel
from qstore.stores.base import Stored, group_doc
from qstore.stores.qdrant import QdrantStore, gather_limited
from qstore.stores.qdrant_filters import translate
from qstore_client.types import Hit, Measurement, Page, Record

if TYPE_CHECKING:
    from qstore.stores.registry import QdrantCatalog

log = logging.getLogger(__name__)

# Writes label their points with the tunneling regions this server last read from the shared
# config; after another server rebuilds them, this one relabels within this many seconds.
REGIONS_TTL = 5.0


class StoreCollection:
    """``CollectionAPI`` over a ``QdrantStore``. ``catalog`` keeps the shared configuration."""

    store_kind = "qdrant"

    def __init__(self, catalog: QdrantCatalog, store: QdrantStore, config: dict[str, Any],
                 clock: Callable[[], float]):
        self._catalog = catalog
        self.store = store
        self.name: str = config["name"]
        self.dim: int = config["dim"]
        self.metric: str = config["metric"]
        self.index: dict[str, Any] = config["index"]
        self.coherence_time: float | None = config.get("coherence_time")
        self.on_decohere: str = config.get("on_decohere", "delete")
        self.regions: dict[str, Any] | None = config.get("regions")
        self._clock = clock
        self._regions_read = time.monotonic()  # when self.regions was last read from the catalog
        self._write_lock = asyncio.Lock()
        self.dropped = False

    def __repr__(self) -> str:
        return f"StoreCollection({self.name!r}, dim={self.dim}, metric={self.metric!r}, store='qdrant')"

    @property
    def config(self) -> dict[str, Any]:
        return {"name": self.name, "dim": self.dim, "metric": self.metric, "index": self.index,
                "coherence_time": self.coherence_time, "on_decohere": self.on_decohere,
                "regions": self.regions, "store": "qdrant"}

    def _now(self) -> float:
        return self._clock()

    def _check_open(self) -> None:
        if self.dropped:
            raise NotFound(f"collection {self.name!r} was dropped", "collection_not_found")

    def _expiry_for(self, coherence_time: Any) -> float | None:
        t = validation.check_coherence_time(coherence_time)
        t = self.coherence_time if t is None else t
        return None if t is None else self._now() + t

    # ------------------------------------------------------------------ reading documents
    def _visible(self, stored: Stored | None, now: float) -> Doc | None:
        return None if stored is None else decoherence.view(stored.doc, now, self.on_decohere)

    def _must_see(self, found: dict[str, Stored], rid: str, now: float) -> Doc:
        doc = self._visible(found.get(rid), now)
        if doc is None:
            raise NotFound(f"record {rid!r} does not exist in {self.name!r}", "not_found")
        return doc

    async def _with_partners(self, rid: str) -> tuple[dict[str, Stored], list[entanglement.Group]]:
        """The record, every member of its groups (one request more when it has groups), and
        those groups."""
        found = await self.store.read([rid])
        names = sorted(found[rid].groups) if rid in found else []
        if names:
            found.update(await self.store.read_groups(names))
        groups = [g for g in (group_doc(n, found) for n in names) if g is not None]
        return found, groups

    def _partners(self, rid: str, found: dict[str, Stored], groups: list[entanglement.Group],
                  now: float) -> list[tuple[str, Doc, float]]:
        out = []
        for pid, rho in entanglement.partner_rhos(rid, groups).items():
            doc = self._visible(found.get(pid), now)
            if doc is not None:
                out.append((pid, doc, rho))
        return out

    async def _write(self, docs: dict[str, Doc | None], found: dict[str, Stored],
                     regroup: dict[str, dict[str, float]] | None = None) -> None:
        """Write whole documents (None deletes), keeping each record's groups."""
        puts = {rid: Stored(doc, found[rid].groups if rid in found else {})
                for rid, doc in docs.items() if doc is not None}
        deletes = [rid for rid, doc in docs.items() if doc is None]
        if self.regions is not None and time.monotonic() - self._regions_read > REGIONS_TTL:
            await self._reload_regions()
        await self.store.write(puts, deletes, regroup, self._region_of())

    # ------------------------------------------------------------------ CRUD
    async def info(self) -> dict[str, Any]:
        self._check_open()
        return {"name": self.name, "dim": self.dim, "metric": self.metric, "index": self.index,
                "coherence_time": self.coherence_time, "on_decohere": self.on_decohere,
                "count": await self.count(), "store": "qdrant", "qdrant_collection": self.store.collection}

    async def count(self) -> int:
        self._check_open()
        return await self.store.count(self._now())

    async def upsert(self, ids: list[str], vectors: Any, metadata: list[dict[str, Any]] | None = None,
                     coherence_time: float | None = None) -> int:
        self._check_open()
        ids = validation.check_ids(ids)
        vecs = validation.check_vectors(vectors, self.dim, metric=self.metric, n=len(ids))
        mds = validation.check_metadata_list(metadata, len(ids))
        expires = self._expiry_for(coherence_time)
        async with self._write_lock:
            found = await self.store.read(ids)
            docs: dict[str, Doc | None] = {
                rid: records.make_doc([(vec, None, 1.0)], md, expires,
                                      records.next_version(found[rid].doc if rid in found else None))
                for rid, vec, md in zip(ids, vecs, mds)}
            await self._write(docs, found)
        return len(ids)

    async def get(self, ids: list[str]) -> list[Record | None]:
        self._check_open()
        ids = validation.check_ids(ids, unique=False)
        now = self._now()
        found = await self.store.read(ids)
        docs = [self._visible(found.get(rid), now) for rid in ids]
        return [None if d is None else records.doc_record(rid, d) for rid, d in zip(ids, docs)]

    async def delete(self, ids: list[str]) -> int:
        self._check_open()
        ids = validation.check_ids(ids, unique=False)
        now = self._now()
        async with self._write_lock:
            found = await self.store.read(ids)
            await self._write(dict.fromkeys(found), found)
        return sum(self._visible(s, now) is not None for s in found.values())

    async def scroll(self, limit: int = 100, cursor: str | None = None,
                     filter: dict[str, Any] | None = None) -> Page:
        """Records in the store's order (grouped by a hash of the id, not the id itself)."""
        self._check_open()
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= validation.MAX_TOP_K:
            raise InvalidArgument(f"limit must be in 1..{validation.MAX_TOP_K}", "invalid_argument")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgument("cursor must be a string from a previous page", "invalid_cursor")
        if cursor is not None:
            try:  # this store's cursors are point ids
                cursor = str(uuid.UUID(cursor))
            except ValueError:
                raise InvalidArgument(f"cursor {cursor!r} is not from a previous page", "invalid_cursor") from None
        flt = translate(filter) if filter is not None else None
        rows, nxt = await self.store.scroll(limit, cursor, flt, self._now())
        return Page([records.doc_record(rid, doc) for rid, doc in rows], nxt)

    # ------------------------------------------------------------------ search
    def _prepare(self, vector: Any) -> np.ndarray:
        q = validation.check_vectors(vector, self.dim, metric=self.metric).astype(np.float32)
        if self.metric == "cosine":
            q = q / np.linalg.norm(q, axis=1, keepdims=True)
        return q

    async def query(self, vector: Any, top_k: int = 10, filter: dict[str, Any] | None = None,
                    context: str | None = None, tunneling: float | None = None, seed: int | None = None,
                    ef: int | None = None, per_region: int | None = None) -> list[Hit]:
        self._check_open()
        q = self._prepare(vector)
        if q.shape[0] != 1:
            raise InvalidArgument("query takes one vector; use query_batch for several", "dimension_mismatch")
        top_k = validation.check_top_k(top_k)
        flt = translate(filter) if filter is not None else None
        validation.check_context(context)
        validation.check_ef(ef)
        now = self._now()
        if tunneling is not None and tunnel.check_strength(tunneling) > 0:
            cap = tunnel.check_per_region(per_region, top_k)
            return await self._tunnel(q[0], top_k, flt, context, float(tunneling), seed, cap, now)
        ranked = await self.store.grouped_search(q[0], top_k, flt, context, now, validation.MAX_TOP_K, ef)
        return await self._hits(ranked, now)

    async def query_batch(self, vectors: Any, top_k: int = 10,
                          filter: dict[str, Any] | None = None) -> list[list[Hit]]:
        """One grouped request per vector, eight at a time."""
        self._check_open()
        q = self._prepare(vectors)
        top_k = validation.check_top_k(top_k)
        flt = translate(filter) if filter is not None else None
        now = self._now()
        ranked = await gather_limited([self.store.grouped_search(row, top_k, flt, None, now, validation.MAX_TOP_K)
                                       for row in q])
        return [await self._hits(r, now) for r in ranked]

    async def _hits(self, ranked: list[tuple[str, float, dict[str, Any], int | None]], now: float) -> list[Hit]:
        return [Hit(rid, score, dict(md)) for rid, score, md, _ in ranked]

    # ------------------------------------------------------------------ tunneling
    def _region_of(self) -> Callable[[np.ndarray], tuple[int, int]] | None:
        r = self.regions
        if r is None:
            return None
        centroids = np.asarray(r["centroids"], np.float32)

        def place(vec: np.ndarray) -> tuple[int, int]:
            return int(tunnel.assign(vec[None, :], centroids)[0][0]), int(r["build"])
        return place

    async def build_regions(self, n_regions: int | None = None, seed: int = 0) -> int:
        """k-means regions over a sample of the stored vectors, saved in the shared config, and
        every point labelled with its region (one request)."""
        self._check_open()
        if n_regions is not None and (isinstance(n_regions, bool) or not isinstance(n_regions, int)
                                      or not 1 <= n_regions <= tunnel.MAX_REGIONS):
            raise InvalidArgument(f"n_regions must be an integer in 1..{tunnel.MAX_REGIONS}", "invalid_argument")
        async with self._write_lock:
            ids, vecs = await self.store.all_point_vectors()
            if len(ids) < 2:
                raise InvalidArgument("tunneling regions need at least two stored vectors", "invalid_tunneling")
            rng = np.random.default_rng(seed)
            sample = vecs if len(vecs) <= tunnel.SAMPLE else vecs[np.sort(rng.choice(len(vecs), tunnel.SAMPLE,
                                                                                    replace=False))]
            count = await self.store.count(self._now())
            centroids, radii = await asyncio.get_running_loop().run_in_executor(
                None, tunnel.fit, sample, n_regions or tunnel.default_regions(count), self.metric, seed, None)
            build = int((self.regions or {}).get("build", 0)) + 1
            labels = tunnel.assign(vecs, centroids)[0]
            await self.store.label_regions(ids, labels, build)
            self.regions = {"centroids": centroids.tolist(), "radii": radii.tolist(), "n": count,
                            "requested": n_regions, "seed": seed, "source": "kmeans", "build": build}
            await self._catalog.save(self.config)
        return len(centroids)

    async def _reload_regions(self) -> None:
        shared = await self._catalog.load(self.name)
        if shared is not None:
            self.regions = shared.get("regions")
        self._regions_read = time.monotonic()

    async def _fresh_regions(self) -> dict[str, Any]:
        """The regions as the shared config holds them now (another server may have rebuilt
        them), rebuilt when the collection has drifted from them."""
        await self._reload_regions()
        r = self.regions
        size = await self.store.count(self._now())
        if r is None or tunnel.stale({**r, "mark": 0}, size=size, written=max(0, size - r["n"]), ivf_ready=False):
            await self.build_regions(r.get("requested") if r else None, r.get("seed", 0) if r else 0)
        assert self.regions is not None
        return self.regions

    async def _tunnel(self, q: np.ndarray, k: int, flt: models.Filter | None, context: str | None, t: float,
                      seed: int | None, cap: int, now: float) -> list[Hit]:
        rng = np.random.default_rng(seed)
        if await self.store.count(now) < 2:  # fewer vectors cannot be partitioned: plain search answers
            return await self._hits(await self.store.grouped_search(q, k, flt, context, now, validation.MAX_TOP_K), now)
        regions = await self._fresh_regions()
        centroids = np.asarray(regions["centroids"], np.float32)
        home, probs = tunnel.entry_probabilities(q, centroids, np.asarray(regions["radii"]), t)
        draws = rng.random(len(probs))
        far = [r for r in np.flatnonzero(draws < probs).tolist() if r != home]
        near, found = await asyncio.gather(
            self.store.grouped_search(q, k, flt, context, now, validation.MAX_TOP_K, regions_build=regions["build"]),
            self.store.region_candidates(q, far, regions["build"], cap, flt, context, now))
        merged: dict[str, tuple[float, int, dict[str, Any]]] = {rid: (s, region if region is not None else home, md)
                                                                for rid, s, md, region in near}
        for r, rows in zip(far, found):
            for rid, s, md in rows:
                merged.setdefault(rid, (s, r, md))
        ranked = sorted(merged.items(), key=lambda kv: kv[1][0], reverse=True)
        keep = tunnel.select([row[1][1] for row in ranked], home, k, cap)
        return [Hit(ranked[i][0], ranked[i][1][0], dict(ranked[i][1][2])) for i in keep]

    # ------------------------------------------------------------------ quantum primitives
    async def superpose(self, id: str, branches: list[tuple[Any, str | None, complex]],
                        metadata: dict[str, Any] | None = None, coherence_time: float | None = None) -> None:
        self._check_open()
        validation.check_id(id)
        parts = superposition.normalise_branches(branches, self.dim, self.metric)
        md = validation.check_metadata(metadata)
        expires = self._expiry_for(coherence_time)
        async with self._write_lock:
            found = await self.store.read([id])
            old = found[id].doc if id in found else None
            await self._write({id: superposition.superposed(parts, md, expires, old)}, found)

    async def measure(self, id: str, context: str | None = None, collapse: bool = False,
                      seed: int | None = None) -> Measurement:
        self._check_open()
        validation.check_id(id)
        validation.check_context(context)
        now = self._now()
        rng = np.random.default_rng(seed)
        u = float(rng.random())
        if not collapse:
            doc = self._must_see(await self.store.read([id]), id, now)
            i, p = measurement.choose(doc, context, u)
            return Measurement(doc["b"][i][2], records.branch_vector(doc, i), p)
        partner_seed = int(rng.integers(2**63))
        async with self._write_lock:
            found, groups = await self._with_partners(id)
            doc = self._must_see(found, id, now)
            i, p = measurement.choose(doc, context, u)
            partners = self._partners(id, found, groups, now)
            draws = np.random.default_rng(partner_seed).random(len(partners))
            await self._write(dict(measurement.collapse(id, doc, i, partners, draws)), found)
        return Measurement(doc["b"][i][2], records.branch_vector(doc, i), p)

    async def entangle(self, group: str, ids: list[str], strength: float = 1.0) -> None:
        self._check_open()
        validation.check_name(group, "group")
        ids = validation.check_ids(ids)
        if not ids:
            raise InvalidArgument("entangle needs ids", "invalid_argument")
        strength = entanglement.check_strength(strength)
        now = self._now()
        async with self._write_lock:
            found = await self.store.read(ids)
            for rid in ids:
                self._must_see(found, rid, now)
            members = await self.store.read_groups([group])
            old = group_doc(group, members)
            new = entanglement.joined(old, group, ids, strength)
            found.update(members)
            await self._regroup(group, new, found)

    async def disentangle(self, group: str, ids: list[str] | None = None) -> None:
        self._check_open()
        validation.check_name(group, "group")
        if ids is not None:
            ids = validation.check_ids(ids, unique=False)
        async with self._write_lock:
            members = await self.store.read_groups([group])
            old = group_doc(group, members)
            if old is None:
                raise NotFound(f"group {group!r} does not exist in {self.name!r}", "not_found")
            await self._regroup(group, entanglement.without(old, ids), members)

    async def _regroup(self, name: str, new: entanglement.Group | None, found: dict[str, Stored]) -> None:
        """Set ``name`` on the new members and take it off everyone else who carries it (a lone
        member left behind when its group dissolved included): one request."""
        after = set(new["members"]) if new else set()
        regroup = {}
        for rid, s in found.items():
            want = {**s.groups, name: new["strength"]} if rid in after else \
                {g: v for g, v in s.groups.items() if g != name}
            if want != s.groups:
                regroup[rid] = want
        await self.store.write({}, (), regroup)

    async def update(self, id: str, vector: Any) -> None:
        self._check_open()
        validation.check_id(id)
        new = validation.check_vectors(vector, self.dim, metric=self.metric, n=1)[0]
        now = self._now()
        async with self._write_lock:
            found, groups = await self._with_partners(id)
            doc = self._must_see(found, id, now)
            docs = entanglement.update(id, doc, new, self._partners(id, found, groups, now), self.metric)
            await self._write(dict(docs), found)

    async def correlation(self, id_a: str, id_b: str) -> float:
        self._check_open()
        validation.check_id(id_a)
        validation.check_id(id_b)
        now = self._now()
        found, groups = await self._with_partners(id_a)
        if id_b not in found:
            found.update(await self.store.read([id_b]))
        for rid in (id_a, id_b):
            self._must_see(found, rid, now)
        return entanglement.correlation(id_a, id_b, groups)

    async def sweep(self) -> int:
        """Delete mode: delete by the expiry filter. Collapse mode: rewrite the expired records."""
        if self.dropped:
            return 0
        now = self._now()
        async with self._write_lock:
            return await self.store.sweep(now)
