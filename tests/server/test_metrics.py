"""The request metrics, counted in plain numbers, against prometheus_client's own Counter and
Histogram fed the same requests: the exposition must be the same."""
from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from qstore_server.metrics import LATENCY_BUCKETS, RequestStats

SUM = "qstore_request_duration_seconds_sum"


def family(text: str, name: str) -> list[str]:
    return sorted(line for line in text.splitlines()
                  if line.startswith(name) and not line.startswith(f"{name}_created"))


def test_request_stats_expose_what_prometheus_client_would():
    rng = np.random.default_rng(0)
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    stats = RequestStats()
    ours.register(stats)
    requests = Counter("qstore_requests", "HTTP requests answered", ["route", "method", "status"], registry=theirs)
    latency = Histogram("qstore_request_duration_seconds", "Time to answer a request, by route", ["route"],
                        buckets=LATENCY_BUCKETS, registry=theirs)
    # Log-uniform latencies from 10 µs to 100 s, plus values exactly on bucket bounds (le is inclusive).
    seconds = np.concatenate([10 ** rng.uniform(-5, 2, 2000), np.repeat(LATENCY_BUCKETS, 3)])
    for i, s in enumerate(seconds.tolist()):
        route, method, status = ("query", "POST", 200) if i % 3 else ("collection", "GET", 404)
        stats.observe(route, method, status, s)
        requests.labels(route, method, str(status)).inc()
        latency.labels(route).observe(s)
    a, b = generate_latest(ours).decode(), generate_latest(theirs).decode()
    for name in ("qstore_requests_total", "qstore_request_duration_seconds_bucket",
                 "qstore_request_duration_seconds_count"):
        assert family(a, name) == family(b, name) and family(a, name), name
    sums = [{k: float(v) for k, v in (line.split(" ") for line in family(text, SUM))} for text in (a, b)]
    assert sums[0].keys() == sums[1].keys() and len(sums[0]) == 2
    for k, total in sums[1].items():
        assert abs(sums[0][k] - total) <= 1e-9 * total
