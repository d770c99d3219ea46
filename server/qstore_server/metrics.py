"""Prometheus metrics for one app, in its own registry (two apps in a process never mix)."""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from qstore_client.errors import QStoreError

LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("qstore_requests", "HTTP requests answered", ["route", "method", "status"], registry=r)
        self.latency = Histogram("qstore_request_duration_seconds", "Time to answer a request, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("qstore_errors", "Error replies by protocol error code", ["code"], registry=r)
        self.records = Gauge("qstore_records", "Live records per collection", ["collection"], registry=r)
        self.index_vectors = Gauge("qstore_index_vectors", "Vectors held by each collection's index "
                                   "(tombstoned ones included)", ["collection"], registry=r)
        self.tombstones = Gauge("qstore_index_tombstones", "Deleted or replaced vectors still in each "
                                "collection's index until its next rebuild", ["collection"], registry=r)
        self.collections = Gauge("qstore_collections", "Number of collections", registry=r)
        self.jobs = Gauge("qstore_jobs", "Jobs known to the server, by state", ["state"], registry=r)
        # labels() takes a lock and builds a key each call; the hot path reuses children.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float, code: str | None) -> None:
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (self.requests.labels(route, method, str(status)),
                                              self.latency.labels(route))
        children[0].inc()
        children[1].observe(seconds)
        if code is not None:
            self.errors.labels(code).inc()

    async def refresh(self, db: Any, job_counts: dict[str, int]) -> None:
        """Update the gauges that describe stored data, just before a scrape."""
        names = await db.list_collections()
        self.records.clear()
        self.index_vectors.clear()
        self.tombstones.clear()
        self.collections.set(len(names))
        for name in names:
            try:
                info = await (await db.collection(name)).info()
            except QStoreError:  # dropped since the listing
                continue
            self.records.labels(name).set(info.get("count", 0))
            self.index_vectors.labels(name).set(info.get("indexed_vectors", 0))
            self.tombstones.labels(name).set(info.get("tombstones", 0))
        for state, n in job_counts.items():
            self.jobs.labels(state).set(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)
