"""Recall against exact search on the shared real embeddings (synthetic when absent)."""
import numpy as np
import pytest

from qstore.sample_data import load_embeddings


@pytest.fixture(scope="module")
def embeddings():
    X, _, source = load_embeddings(12_000)
    return X[:10_000], X[-200:], source


def exact_top(X, Q, k):
    return np.argsort(-(Q @ X.T), axis=1)[:, :k]


@pytest.mark.parametrize("index,floor", [
    ({"type": "hnsw", "m": 16, "ef_construction": 100, "ef_search": 64}, 0.95),
    ({"type": "ivf", "nlist": 64, "nprobe": 16}, 0.90),
    ({"type": "flat"}, 1.0),
])
async def test_recall_at_10(db, embeddings, index, floor):
    X, Q, source = embeddings
    col = await db.create_collection("r", dim=X.shape[1], metric="cosine", index=index)
    for s in range(0, len(X), 2000):
        await col.upsert([str(i) for i in range(s, s + 2000)], X[s:s + 2000])
    truth = exact_top(X, Q, 10)
    got = await col.query_batch(Q, top_k=10)
    recall = np.mean([len(set(int(h.id) for h in hits) & set(t.tolist())) / 10 for hits, t in zip(got, truth)])
    assert recall >= floor, f"{index['type']} recall {recall:.3f} on {source}"
