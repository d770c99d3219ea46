"""QdrantStore: record documents as Qdrant points, one point per branch.

Point payload: ``rid`` record id, ``v`` record version, ``j`` branch index, ``nb`` branch count,
``c`` context, ``re``/``im`` amplitude, ``p`` = |α|², ``top`` (the most probable branch),
``m`` metadata and ``mk`` its keys, ``e`` expiry (null: none), ``gs`` {group: strength} and
``g`` the group names, ``norm`` the stored vector's length (cosine keeps unit vectors, scored
by dot product, so the stored vector is ``norm`` times the indexed one), ``r``/``rv`` the
tunneling region and the region build it belongs to.

A point's id is derived from (record id, version, branch): the first 8 bytes hash the record
id, so a record's points are adjacent in Qdrant's id order (scroll pages by record), and a
retried write names the same points (idempotent). A write upserts the new versions' points
and deletes every older version in one ``batch_update_points`` request. Until the delete is
applied a record may have two versions' points; every read keeps the newest complete one.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from qstore import records
from qstore.errors import NotFound, error
from qstore.records import Doc
from qstore.states import decoherence, entanglement
from qstore.storage import codec
from qstore.stores.base import Groups, Stored, group_doc
from qstore.stores.qdrant_filters import translate
from qstore.validation import MAX_TOP_K

log = logging.getLogger(__name__)

DISTANCE = {"cosine": models.Distance.DOT, "ip": models.Distance.DOT, "l2": models.Distance.EUCLID}
PAGE = 1024  # points per scroll request
GROUP_SIZE = 16  # branches fetched per record by a grouped query; more costs one more read
WRITE_ORDERING = models.WriteOrdering.STRONG  # writes go through each shard's leader, in order
TOP = models.FieldCondition(key="top", match=models.MatchValue(value=True))  # one point per record


def point_id(rid: str, version: int, j: int) -> str:
    key = rid.encode()
    head = hashlib.blake2b(key, digest_size=8).digest()
    tail = hashlib.blake2b(key + b"\0" + f"{version}:{j}".encode(), digest_size=8).digest()
    return str(uuid.UUID(bytes=head + tail))


async def reached(coro: Any) -> Any:
    """Await one Qdrant request; an unreachable deployment is ``unavailable`` (503: retry)."""
    try:
        return await coro
    except ResponseHandlingException as exc:
        raise error("unavailable", f"Qdrant did not answer: {exc}") from None


def _is_missing_collection(exc: Exception) -> bool:
    text = str(exc)
    return "not found" in text.lower() or "doesn't exist" in text or "does not exist" in text


class QdrantStore:
    """The record documents of one collection in one Qdrant collection.

    ``client`` may be shared by several stores (and several Q-Store databases in one process:
    local mode allows one client per directory). Reads ask for ``read_consistency`` replicas
    and writes wait for the write consistency factor, so a write acknowledged through one
    Q-Store server is read back through any other.
    """

    def __init__(self, client: AsyncQdrantClient, collection: str, dim: int, metric: str,
                 on_decohere: str, *, exact: bool = False, hnsw_ef: int | None = None,
                 read_consistency: Any = models.ReadConsistencyType.MAJORITY, remote: bool = True):
        self.client = client
        self.remote = remote
        self.collection = collection
        self.dim = dim
        self.metric = metric
        self.on_decohere = on_decohere
        # Local mode always searches exactly and warns about search parameters.
        self._search_params = models.SearchParams(exact=exact, hnsw_ef=hnsw_ef) if remote else None
        self._consistency = read_consistency

    # ------------------------------------------------------------------ lifecycle
    async def create(self, *, shard_number: int | None = None, replication_factor: int | None = None,
                     write_consistency_factor: int | None = None, hnsw_m: int | None = None,
                     hnsw_ef_construct: int | None = None) -> None:
        await self._call(self.client.create_collection(
            self.collection,
            vectors_config=models.VectorParams(size=self.dim, distance=DISTANCE[self.metric]),
            shard_number=shard_number, replication_factor=replication_factor,
            write_consistency_factor=write_consistency_factor,
            hnsw_config=models.HnswConfigDiff(m=hnsw_m, ef_construct=hnsw_ef_construct)))
        if not self.remote:
            return
        # Payload indexes make the filters every read carries cheap on a server (local mode has none).
        kinds = models.PayloadSchemaType
        for field, schema in (("rid", kinds.KEYWORD), ("g", kinds.KEYWORD), ("c", kinds.KEYWORD),
                              ("mk", kinds.KEYWORD), ("e", kinds.FLOAT), ("top", kinds.BOOL), ("v", kinds.INTEGER),
                              ("nb", kinds.INTEGER), ("r", kinds.INTEGER), ("rv", kinds.INTEGER)):
            await self._call(self.client.create_payload_index(self.collection, field, schema, wait=True))

    async def drop(self) -> None:
        await self._call(self.client.delete_collection(self.collection))

    # ------------------------------------------------------------------ points <-> documents
    def _prepared(self, raw: np.ndarray) -> tuple[np.ndarray, float]:
        if self.metric != "cosine":
            return raw, 1.0
        norm = float(np.linalg.norm(raw.astype(np.float64)))
        return (raw / norm).astype(np.float32), norm

    def points(self, rid: str, doc: Doc, groups: Groups, region: Any = None) -> list[models.PointStruct]:
        """The points of one record version. ``region`` maps a vector to (region, build) or None."""
        probs = records.probabilities(doc)
        top = int(np.argmax(probs))
        shared = {"rid": rid, "v": doc["v"], "nb": len(doc["b"]), "m": doc["m"], "mk": list(doc["m"]),
                  "e": doc["e"], "gs": dict(groups), "g": sorted(groups)}
        out = []
        for j, b in enumerate(doc["b"]):
            vec, norm = self._prepared(codec.vector_from(b[1]))
            payload = {**shared, "j": j, "c": b[2], "re": b[3], "im": b[4], "p": float(probs[j]),
                       "top": j == top, "norm": norm}
            if region is not None:
                placed = region(vec)
                if placed is not None:
                    payload["r"], payload["rv"] = placed
            out.append(models.PointStruct(id=point_id(rid, doc["v"], j), vector=vec.tolist(), payload=payload))
        return out

    def _branch(self, p: Any) -> list[Any]:
        vec = np.asarray(p.vector, np.float32)
        if self.metric == "cosine":
            vec = (vec.astype(np.float64) * p.payload["norm"]).astype(np.float32)
        pl = p.payload
        return [pl["j"], codec.vector_bytes(vec), pl["c"], pl["re"], pl["im"]]

    @staticmethod
    def _newest(points: list[Any], complete: bool = True) -> list[Any]:
        """The points of the newest version (the newest complete one when ``complete``)."""
        by_v: dict[int, list[Any]] = {}
        for p in points:
            by_v.setdefault(p.payload["v"], []).append(p)
        for v in sorted(by_v, reverse=True):
            pts = by_v[v]
            if not complete or len(pts) == pts[0].payload["nb"]:
                return sorted(pts, key=lambda p: p.payload["j"])
        return []

    def _stored(self, points: list[Any]) -> Stored | None:
        pts = self._newest(points)
        if not pts:
            return None
        pl = pts[0].payload
        doc = {"b": [self._branch(p) for p in pts], "m": pl["m"], "e": pl["e"], "v": pl["v"]}
        return Stored(doc, dict(pl["gs"]))

    def _visible_doc(self, points: list[Any], now: float) -> Doc | None:
        """The record as reads see it, from the points a visibility-filtered read returned: the
        newest version that is whole (an expired record in collapse mode arrives as its top
        branch alone, which is whole for it)."""
        by_v: dict[int, list[Any]] = {}
        for p in points:
            by_v.setdefault(p.payload["v"], []).append(p)
        for v in sorted(by_v, reverse=True):
            pts = sorted(by_v[v], key=lambda p: p.payload["j"])
            pl = pts[0].payload
            if pl["e"] is not None and pl["e"] <= now:
                top = [p for p in pts if p.payload["top"]]
                if top and decoherence.collapses(pl["nb"], self.on_decohere):
                    b = self._branch(top[0])
                    return {"b": [[0, b[1], b[2], 1.0, 0.0]], "m": pl["m"], "e": None, "v": v}
            elif len(pts) == pl["nb"]:
                return {"b": [self._branch(p) for p in pts], "m": pl["m"], "e": pl["e"], "v": v}
        return None

    # ------------------------------------------------------------------ filters
    def visible(self, now: float) -> models.Filter:
        """Points of records not yet expired at ``now`` (and, in collapse mode, the top branch of
        expired superposed ones): the expiry condition every search, scroll and count carries."""
        alive = models.Filter(must_not=[models.FieldCondition(key="e", range=models.Range(lte=now))])
        if self.on_decohere != "collapse":
            return alive
        collapsed = models.Filter(must=[TOP, models.FieldCondition(key="nb", range=models.Range(gt=1))])
        return models.Filter(should=[alive, collapsed])

    @staticmethod
    def of_records(ids: Iterable[str]) -> models.FieldCondition:
        return models.FieldCondition(key="rid", match=models.MatchAny(any=list(ids)))

    @staticmethod
    def in_group(names: Iterable[str]) -> models.FieldCondition:
        return models.FieldCondition(key="g", match=models.MatchAny(any=list(names)))

    # ------------------------------------------------------------------ reads
    async def _scroll_all(self, flt: models.Filter, vectors: bool = True) -> list[Any]:
        out, offset = [], None
        while True:
            pts, offset = await self._call(self.client.scroll(
                self.collection, scroll_filter=flt, limit=PAGE, offset=offset, with_payload=True,
                with_vectors=vectors, consistency=self._consistency))
            out.extend(pts)
            if offset is None:
                return out

    @staticmethod
    def _by_record(points: list[Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for p in points:
            out.setdefault(p.payload["rid"], []).append(p)
        return out

    async def read(self, ids: Iterable[str]) -> dict[str, Stored]:
        """The stored records among ``ids`` (expired ones too): one request per 1024 points."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        pts = await self._scroll_all(models.Filter(must=[self.of_records(ids)]))
        out = {}
        for rid, group in self._by_record(pts).items():
            stored = self._stored(group)
            if stored is not None:
                out[rid] = stored
        return out

    async def read_groups(self, names: Iterable[str]) -> dict[str, Stored]:
        """Every stored member of the groups ``names``, with its document."""
        names = list(names)
        if not names:
            return {}
        pts = await self._scroll_all(models.Filter(must=[self.in_group(names)]))
        out = {}
        for rid, group in self._by_record(pts).items():
            stored = self._stored(group)
            if stored is not None:
                out[rid] = stored
        return out

    async def count(self, now: float) -> int:
        flt = models.Filter(must=[self.visible(now), TOP])
        res = await self._call(self.client.count(self.collection, count_filter=flt, exact=True))
        return int(res.count)

    async def scroll(self, limit: int, cursor: str | None, flt: models.Filter | None,
                     now: float) -> tuple[list[tuple[str, Doc]], str | None]:
        """Up to ``limit`` visible records in the store's order (record-id hash), and the cursor
        of the next page: the id of its first point."""
        cond = models.Filter(must=[self.visible(now)] + ([flt] if flt is not None else []))
        recs: dict[str, list[Any]] = {}
        offset: Any = cursor
        while True:
            pts, nxt = await self._call(self.client.scroll(
                self.collection, scroll_filter=cond, limit=PAGE, offset=offset, with_payload=True,
                with_vectors=True, consistency=self._consistency))
            for p in pts:
                rid = p.payload["rid"]
                if rid not in recs and len(recs) == limit:
                    return self._assembled(recs, now), str(p.id)
                recs.setdefault(rid, []).append(p)
            if nxt is None:
                return self._assembled(recs, now), None
            offset = nxt

    def _assembled(self, recs: dict[str, list[Any]], now: float) -> list[tuple[str, Doc]]:
        out = []
        for rid, pts in recs.items():
            doc = self._visible_doc(pts, now)
            if doc is not None:
                out.append((rid, doc))
        return out

    def similarity(self, q: np.ndarray, vecs: np.ndarray) -> np.ndarray:
        """Scores as the LMDB store gives them: dot product (cosine on unit vectors) or −‖q−v‖²."""
        if self.metric == "l2":
            d = vecs.astype(np.float32) - q.astype(np.float32)
            return -(d * d).sum(1)
        return vecs.astype(np.float32) @ q.astype(np.float32)

    async def search(self, q: np.ndarray, k: int, filter: dict[str, Any] | None, context: str | None,
                     now: float) -> list[tuple[str, float]]:
        """The store interface's search: (record id, score) of the k best visible records for the
        query vector ``q`` (as given: cosine queries are normalised here)."""
        flt = translate(filter) if filter is not None else None
        prepared = self._prepared(np.asarray(q, np.float32))[0]
        return [(rid, s) for rid, s, _, _ in await self.grouped_search(prepared, k, flt, context, now, MAX_TOP_K)]

    async def grouped_search(self, q: np.ndarray, k: int, flt: models.Filter | None, context: str | None,
                             now: float, limit: int, ef: int | None = None,
                     regions_build: int | None = None) -> list[tuple[str, float, dict[str, Any], int | None]]:
        """The k best records for the prepared query ``q`` as (id, score, metadata, region of the
        best branch under build ``regions_build``): grouped by record id in Qdrant, then
        re-scored exactly as the LMDB store scores them (Born-weighted over the branches, or over
        the ``context`` branches renormalised). A record's score never exceeds its best branch
        similarity, so once the k-th score reaches the weakest group's best similarity no unseen
        record can enter; until then the request widens (one round trip each)."""
        must: list[Any] = [self.visible(now)]
        if flt is not None:
            must.append(flt)
        if context is not None:
            must.append(models.FieldCondition(key="c", match=models.MatchValue(value=context)))
        cond = models.Filter(must=must)
        params = self._search_params
        if ef is not None and params is not None:
            params = models.SearchParams(exact=params.exact, hnsw_ef=ef)
        groups = min(k, limit)
        while True:
            res = await self._call(self.client.query_points_groups(
                self.collection, query=q.tolist(), group_by="rid", limit=groups, group_size=GROUP_SIZE,
                query_filter=cond, with_payload=True, with_vectors=True, search_params=params,
                consistency=self._consistency))
            ranked: list[tuple[str, float, dict[str, Any], int | None]] = []
            floor = np.inf
            for g in res.groups:
                pts = self._newest(g.hits, complete=False)
                if not pts:
                    continue
                score, best = await self._born(q, str(g.id), pts, context, now)
                floor = min(floor, best)
                if score is not None:
                    pl = max(pts, key=lambda p: p.score).payload
                    region = pl.get("r") if regions_build is not None and pl.get("rv") == regions_build else None
                    ranked.append((str(g.id), score, pl["m"], region))
            ranked.sort(key=lambda r: r[1], reverse=True)
            if len(res.groups) < groups or groups >= limit or (len(ranked) >= k and ranked[k - 1][1] >= floor):
                return ranked[:k]
            groups = min(groups * 4, limit)

    async def _born(self, q: np.ndarray, rid: str, pts: list[Any], context: str | None,
                    now: float) -> tuple[float | None, float]:
        """(the record's score or None when it is not visible, its best branch similarity)."""
        pl = pts[0].payload
        sims = self.similarity(q, np.asarray([p.vector for p in pts], np.float32))
        best = float(sims.max())
        if pl["e"] is not None and pl["e"] <= now:  # collapse mode: the top branch, amplitude 1
            return best, best
        complete = len(pts) == pl["nb"] or (context is not None and len(pts) < GROUP_SIZE)
        if not complete:  # more branches than one group holds, or a write under way: read it whole
            stored = (await self.read([rid])).get(rid)
            if stored is None:
                return None, best
            doc = decoherence.view(stored.doc, now, self.on_decohere)
            if doc is None:
                return None, best
            keep = [i for i, b in enumerate(doc["b"]) if context is None or b[2] == context]
            if not keep:
                return None, best
            vecs = np.stack([self._prepared(codec.vector_from(doc["b"][i][1]))[0] for i in keep])
            sims = self.similarity(q, vecs)
            probs = records.probabilities(doc)[keep]
        else:
            probs = np.array([p.payload["p"] for p in pts])
        if not probs.sum() > 0:
            return None, best
        if len(sims) == 1:
            return float(sims[0]), best
        return float((probs / probs.sum()) @ sims.astype(np.float64)), best

    async def region_candidates(self, q: np.ndarray, regions: list[int], build: int, per_region: int,
                                flt: models.Filter | None, context: str | None,
                                now: float) -> list[list[tuple[str, float, dict[str, Any]]]]:
        """For each region, its ``per_region`` best records for ``q`` (grouped, re-scored):
        one batched request for all the regions."""
        reqs = []
        for r in regions:
            must: list[Any] = [self.visible(now),
                               models.FieldCondition(key="r", match=models.MatchValue(value=r)),
                               models.FieldCondition(key="rv", match=models.MatchValue(value=build))]
            if flt is not None:
                must.append(flt)
            if context is not None:
                must.append(models.FieldCondition(key="c", match=models.MatchValue(value=context)))
            reqs.append(models.QueryRequest(query=q.tolist(), filter=models.Filter(must=must),
                                            limit=per_region * GROUP_SIZE, with_payload=True, with_vector=True,
                                            params=self._search_params))
        if not reqs:
            return []
        results = await self._call(self.client.query_batch_points(self.collection, reqs,
                                                                  consistency=self._consistency))
        out = []
        for res in results:
            ranked = []
            for rid, pts in self._by_record(res.points).items():
                pts = self._newest(pts, complete=False)
                score, _ = await self._born(q, rid, pts, context, now)
                if score is not None:
                    ranked.append((rid, score, pts[0].payload["m"]))
            ranked.sort(key=lambda r: r[1], reverse=True)
            out.append(ranked[:per_region])
        return out

    async def sample_vectors(self, n: int, seed: int) -> list[tuple[str, np.ndarray]]:
        """Up to ``n`` (point id, indexed vector) pairs drawn from every point."""
        pts = await self._scroll_all(models.Filter(), vectors=True)
        rng = np.random.default_rng(seed)
        if len(pts) > n:
            pts = [pts[i] for i in sorted(rng.choice(len(pts), n, replace=False).tolist())]
        return [(str(p.id), np.asarray(p.vector, np.float32)) for p in pts]

    async def all_point_vectors(self) -> tuple[list[str], np.ndarray]:
        pts = await self._scroll_all(models.Filter(), vectors=True)
        vecs = np.asarray([p.vector for p in pts], np.float32).reshape(-1, self.dim)
        return [str(p.id) for p in pts], vecs

    async def label_regions(self, ids: list[str], labels: np.ndarray, build: int) -> None:
        """Set every point's region for the build ``build``: one request, one operation per region."""
        ops = []
        for r in np.unique(labels).tolist():
            members = [ids[i] for i in np.flatnonzero(labels == r).tolist()]
            ops.append(models.SetPayloadOperation(set_payload=models.SetPayload(
                payload={"r": int(r), "rv": build}, points=members)))
        if ops:
            await self._call(self.client.batch_update_points(self.collection, ops, wait=True,
                                                             ordering=WRITE_ORDERING))

    # ------------------------------------------------------------------ writes
    def write_ops(self, puts: dict[str, Stored], deletes: Iterable[str] = (),
                  regroup: dict[str, Groups] | None = None, region: Any = None) -> list[Any]:
        """The operations of one atomic-where-possible write: upsert the new versions, then drop
        every other version of the records written and every point of the records deleted,
        then set new group maps on records whose membership alone changed."""
        ops: list[Any] = []
        points = [p for rid, s in puts.items() for p in self.points(rid, s.doc, s.groups, region)]
        if points:
            ops.append(models.UpsertOperation(upsert=models.PointsList(points=points)))
        stale = [models.Filter(must=[models.FieldCondition(key="rid", match=models.MatchValue(value=rid))],
                               must_not=[models.FieldCondition(key="v", match=models.MatchValue(value=s.doc["v"]))])
                 for rid, s in puts.items()]
        deletes = list(deletes)
        if deletes:
            stale.append(models.Filter(must=[self.of_records(deletes)]))
        if stale:
            ops.append(models.DeleteOperation(delete=models.FilterSelector(filter=models.Filter(should=stale))))
        for rid, groups in (regroup or {}).items():
            ops.append(models.SetPayloadOperation(set_payload=models.SetPayload(
                payload={"gs": dict(groups), "g": sorted(groups)},
                filter=models.Filter(must=[models.FieldCondition(key="rid", match=models.MatchValue(value=rid))]))))
        return ops

    async def write(self, puts: dict[str, Stored], deletes: Iterable[str] = (),
                    regroup: dict[str, Groups] | None = None, region: Any = None) -> None:
        """One ``batch_update_points`` request. Qdrant applies its operations in order on each
        shard; across shards they are not atomic (docs/STORES.md). Retrying the same request
        is idempotent: it names the same points with the same payloads."""
        ops = self.write_ops(puts, deletes, regroup, region)
        if ops:
            await self._call(self.client.batch_update_points(self.collection, ops, wait=True,
                                                             ordering=WRITE_ORDERING))

    async def sweep(self, now: float) -> int:
        """Make decoherence durable. Delete mode: count, then delete by the expiry filter (two
        requests); collapse mode: read the expired records and write their collapsed versions."""
        if self.on_decohere == "delete":
            return await self._delete_expired(now)
        olds = await self.expired(now)
        docs = {rid: decoherence.decohered(s.doc, now, self.on_decohere) for rid, s in olds.items()}
        await self.write({rid: Stored(d, olds[rid].groups) for rid, d in docs.items() if d is not None},
                         [rid for rid, d in docs.items() if d is None])
        return len(olds)

    async def _delete_expired(self, now: float) -> int:
        expired = models.Filter(must=[models.FieldCondition(key="e", range=models.Range(lte=now))])
        counted = models.Filter(must=[expired, TOP])
        n = (await self._call(self.client.count(self.collection, count_filter=counted, exact=True))).count
        if n:
            await self._call(self.client.delete(self.collection, models.FilterSelector(filter=expired),
                                                wait=True, ordering=WRITE_ORDERING))
        return int(n)

    def filter_for(self, filter: dict[str, Any]) -> models.Filter:
        return translate(filter)

    async def scroll_stored(self, limit: int, cursor: str | None,
                            flt: models.Filter | None) -> tuple[list[tuple[str, Stored]], str | None]:
        """Up to ``limit`` stored records as they are (expired ones too), and the next cursor."""
        recs: dict[str, list[Any]] = {}
        offset: Any = cursor
        while True:
            pts, nxt = await self._call(self.client.scroll(
                self.collection, scroll_filter=flt, limit=PAGE, offset=offset, with_payload=True,
                with_vectors=True, consistency=self._consistency))
            for p in pts:
                rid = p.payload["rid"]
                if rid not in recs and len(recs) == limit:
                    return self._stored_rows(recs), str(p.id)
                recs.setdefault(rid, []).append(p)
            if nxt is None:
                return self._stored_rows(recs), None
            offset = nxt

    def _stored_rows(self, recs: dict[str, list[Any]]) -> list[tuple[str, Stored]]:
        rows = [(rid, self._stored(pts)) for rid, pts in recs.items()]
        return [(rid, s) for rid, s in rows if s is not None]

    async def groups(self) -> dict[str, entanglement.Group]:
        """Every group with at least two stored members (one request per 1024 member points)."""
        pts = await self._scroll_all(models.Filter(must_not=[models.IsEmptyCondition(
            is_empty=models.PayloadField(key="g"))]), vectors=False)
        members: dict[str, Stored] = {}
        for p in pts:
            members.setdefault(p.payload["rid"], Stored({}, dict(p.payload["gs"])))
        names = {n for s in members.values() for n in s.groups}
        found = {n: group_doc(n, members) for n in sorted(names)}
        return {n: g for n, g in found.items() if g is not None}

    async def put_groups(self, groups: dict[str, entanglement.Group]) -> None:
        """Make these the groups of their members (other groups of those members are kept)."""
        ids = sorted({m for g in groups.values() for m in g["members"]})
        found = await self.read(ids)
        regroup = {}
        for rid, s in found.items():
            want = {**s.groups, **{n: g["strength"] for n, g in groups.items() if rid in g["members"]}}
            if want != s.groups:
                regroup[rid] = want
        await self.write({}, (), regroup)

    async def expired(self, now: float) -> dict[str, Stored]:
        pts = await self._scroll_all(models.Filter(must=[models.FieldCondition(key="e", range=models.Range(lte=now))]))
        out = {}
        for rid, group in self._by_record(pts).items():
            stored = self._stored(group)
            if stored is not None:
                out[rid] = stored
        return out

    async def _call(self, coro: Any) -> Any:
        """One request, its failures as Q-Store errors: a vanished collection is
        ``collection_not_found``, an unreachable deployment ``unavailable`` (retry: writes are idempotent)."""
        try:
            return await reached(coro)
        except (UnexpectedResponse, ValueError) as exc:
            if _is_missing_collection(exc):
                raise NotFound(f"collection {self.collection!r} is not in Qdrant (dropped through another "
                               "server?)", "collection_not_found") from None
            raise


async def gather_limited(coros: list[Any], limit: int = 8) -> list[Any]:
    """Run ``coros`` concurrently, at most ``limit`` at a time (one round trip each)."""
    sem = asyncio.Semaphore(limit)

    async def one(c: Any) -> Any:
        async with sem:
            return await c
    return list(await asyncio.gather(*(one(c) for c in coros)))
