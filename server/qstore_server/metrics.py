"""Prometheus metrics for one app, in its own registry (two apps in a process never mix)."""
from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from qstore_client.errors import QStoreError

LATENCY_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestStats:
    """Requests answered and their latency, counted in plain numbers on the event loop
    (prometheus_client's metrics take a lock per update: ~5 % of sixteen clients' throughput)
    and turned into Prometheus families when scraped, on the same loop."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # route -> a count per bucket (the last +Inf), then the sum

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        buckets = self.latency.get(route)
        if buckets is None:
            buckets = self.latency[route] = [0] * (len(LATENCY_BUCKETS) + 1) + [0.0]
        buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        buckets[-1] += seconds

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily("qstore_requests", "HTTP requests answered",
                                       labels=["route", "method", "status"])
        for (route, method, status), n in self.counts.items():
            requests.add_metric([route, method, str(status)], n)
        yield requests
        latency = HistogramMetricFamily("qstore_request_duration_seconds", "Time to answer a request, by route",
                                        labels=["route"])
        bounds = [floatToGoString(b) for b in LATENCY_BUCKETS] + ["+Inf"]
        for route, buckets in self.latency.items():
            latency.add_metric([route], list(zip(bounds, itertools.accumulate(buckets[:-1]))), buckets[-1])
        yield latency


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = RequestStats()
        r.register(self.requests)
        self.errors = Counter("qstore_errors", "Error replies by protocol error code", ["code"], registry=r)
        self.records = Gauge("qstore_records", "Live records per collection", ["collection"], registry=r)
        self.index_vectors = Gauge("qstore_index_vectors", "Vectors held by each collection's index "
                                   "(tombstoned ones included)", ["collection"], registry=r)
        self.tombstones = Gauge("qstore_index_tombstones", "Deleted or replaced vectors still in each "
                                "collection's index until its next rebuild", ["collection"], registry=r)
        self.collections = Gauge("qstore_collections", "Number of collections", registry=r)
        self.jobs = Gauge("qstore_jobs", "Jobs known to the server, by state", ["state"], registry=r)

    def observe(self, route: str, method: str, status: int, seconds: float, code: str | None) -> None:
        self.requests.observe(route, method, status, seconds)
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
