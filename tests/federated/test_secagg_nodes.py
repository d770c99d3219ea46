"""Secure aggregation across real server processes over HTTP, one of them dropping out mid-protocol.

Every byte the coordinator receives passes a recording proxy: the job results hold public
keys, ciphertexts, shares and masked uint64 vectors, never a float update; the model still
moves by FedAvg of the survivors' true updates (replayed here from their round tasks).
"""
from __future__ import annotations

import asyncio

import msgpack
import numpy as np
from scipy import stats

from qstore.federated import Coordinator, FedAvg, RemoteParticipant, train_local
from qstore.training import VQC
from qstore.training.data import DataSummary, FeatureStats
from tests.federated.test_multinode import RecordingProxy, walk
from tests.federated.test_secagg import Tap, assert_moved_by


def tagged_arrays(value):
    """Every {"$ndarray": {...}} inside a decoded document."""
    if isinstance(value, dict):
        if set(value) == {"$ndarray"}:
            yield value["$ndarray"]
        else:
            for v in value.values():
                yield from tagged_arrays(v)
    elif isinstance(value, list):
        for v in value:
            yield from tagged_arrays(v)


def fitted_model(split) -> VQC:
    model = VQC(4, 2, 2, n_features=4)
    stats_ = FeatureStats.of(split.X_train)
    model.scaler.fit(stats_)
    model.fit_targets(DataSummary.of(4, stats_, split.y_train))
    model.params = model.init_params(np.random.default_rng(0))
    return model


async def test_secure_round_over_server_nodes_with_a_dropout(nodes, split):
    proxies = [RecordingProxy(n.url) for n in nodes]
    urls = [await p.__aenter__() for p in proxies]
    parts = [Tap(RemoteParticipant(url)) for url in urls]
    parts[3].drop_at = "masked_input"  # node 3 shared its keys, then went away
    try:
        model = fitted_model(split)  # fitted up front: the coordinator asks for no column statistics
        coord = Coordinator(parts, dataset="iid", rounds=1, seed=5, deadline_s=60, secure_aggregation=True)
        record = (await coord.run(model))[0]
    finally:
        for p in parts:
            await p.close()
        for proxy in proxies:
            await proxy.__aexit__()
    assert record.status == "aggregated" and record.participants == urls[:3]
    assert record.secure["threshold"] == 3 and record.secure["stages"]["masked_input"] == 3
    assert record.excluded[urls[3]].startswith("masked_input")
    # The survivors' true updates, replayed from their tasks on the rows each node holds.
    updates = await asyncio.to_thread(lambda: [
        train_local(parts[i].tasks[0], split.X_train[split.iid[i]], split.y_train[split.iid[i]]) for i in range(3)])
    start = parts[0].tasks[0].params
    expected = FedAvg().aggregate(start, np.stack([u.delta for u in updates]), np.array([u.n for u in updates]), 0)
    assert_moved_by(model, start, expected)
    # What came back over the wire: no float vector in any job result, masked vectors uniform.
    masked = []
    for proxy in proxies:
        kinds = {msgpack.unpackb(req)["kind"] for route, req, _ in proxy.exchanges if route == "POST /v1/jobs"}
        assert kinds == {"federated_secagg"}
        results = [msgpack.unpackb(reply)["result"] for route, _, reply in proxy.exchanges
                   if route.endswith("/result")]
        assert results, "every node answered at least one stage"
        for result in results:
            for tensor in tagged_arrays(result):
                assert tensor["dtype"] == "u64", tensor["dtype"]
                masked.append(np.frombuffer(tensor["data"], dtype="<u8"))
            for _, leaf in walk(result):
                assert not isinstance(leaf, float)
    words = np.concatenate(masked)
    assert len(masked) == 3 and len(words) == 3 * (model.n_params + 1)
    nibbles = ((words[:, None] >> (np.arange(16, dtype=np.uint64) * np.uint64(4))) & np.uint64(15)).ravel()
    assert stats.chisquare(np.bincount(nibbles.astype(np.int64), minlength=16)).pvalue > 1e-4
