import numpy as np
import pytest

from qstore.states.tunneling import entry_probabilities


@pytest.fixture
async def clustered(db):
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(8, 16)) * 10
    X = np.concatenate([c + rng.normal(size=(100, 16)) for c in centers]).astype(np.float32)
    col = await db.create_collection("clusters", dim=16, metric="l2", index={"type": "hnsw", "m": 16})
    await col.upsert([f"{i // 100}-{i % 100}" for i in range(800)], X, [{"cluster": i // 100} for i in range(800)])
    assert await col.build_regions(8) == 8
    labels = np.argmin(((X[:, None, :] - col.regions["centroids"][None]) ** 2).sum(-1), axis=1)
    assert all(len(set(labels[c * 100:(c + 1) * 100])) == 1 for c in range(8))  # regions found the clusters
    assert len(set(labels)) == 8
    return col, centers, X


def cluster_of(hit):
    return int(hit.id.split("-")[0])


async def test_plain_search_stays_home_tunneling_leaves_it(clustered):
    col, centers, X = clustered
    q = centers[0].astype(np.float32)
    plain = await col.query(q, top_k=10)
    assert {cluster_of(h) for h in plain} == {0}
    assert [h.id for h in await col.query(q, top_k=10, tunneling=0)] == [h.id for h in plain]
    assert [h.id for h in await col.query(q, top_k=10, tunneling=None)] == [h.id for h in plain]
    tunneled = await col.query(q, top_k=10, tunneling=50.0, seed=1)
    clusters = [cluster_of(h) for h in tunneled]
    assert clusters.count(0) == 5  # per_region = ⌈10/2⌉ caps the home region
    assert len(set(clusters)) > 1
    # relevant: each far record is among the closest members of its cluster to the query
    for h in tunneled:
        c = cluster_of(h)
        members = X[c * 100:(c + 1) * 100]
        rank = np.argsort(((members - q) ** 2).sum(1))
        assert int(h.id.split("-")[1]) in rank[:5].tolist()
    assert [h.score for h in tunneled] == sorted((h.score for h in tunneled), reverse=True)


async def test_seeded_and_stronger_tunneling_reaches_further(clustered):
    col, centers, _ = clustered
    q = centers[3].astype(np.float32)
    a = await col.query(q, top_k=10, tunneling=2.0, seed=9)
    b = await col.query(q, top_k=10, tunneling=2.0, seed=9)
    assert [h.id for h in a] == [h.id for h in b]

    async def reach(t):
        far = 0
        for seed in range(30):
            hits = await col.query(q, top_k=10, tunneling=t, seed=seed)
            far += sum(cluster_of(h) != 3 for h in hits)
        return far
    weak, strong = await reach(0.5), await reach(20.0)
    assert strong > weak


async def test_per_region_and_filters(clustered):
    col, centers, _ = clustered
    q = centers[2].astype(np.float32)
    hits = await col.query(q, top_k=12, tunneling=1e6, seed=0, per_region=2)
    clusters = [cluster_of(h) for h in hits]
    assert max(clusters.count(c) for c in set(clusters)) <= 2 and len(set(clusters)) == 6
    hits = await col.query(q, top_k=10, tunneling=1e6, seed=0, filter={"cluster": {"$in": [2, 5]}})
    assert {cluster_of(h) for h in hits} == {2, 5}


def test_entry_probability_uses_the_distance_to_the_voronoi_cell():
    """1-D, centroids 0, 2, 6, query at 0: the cell of 6 starts at 4 (not at the bisector 3)."""
    centroids = np.array([[0.0, 0], [2, 0], [6, 0]])
    home, p = entry_probabilities(np.array([0.0, 0]), centroids, np.ones(3), t=1.0)
    assert home == 0 and p[0] == 1
    np.testing.assert_allclose(p[1:], np.exp(-2 * np.array([1.0, 4.0]) / 1.0))
    _, p = entry_probabilities(np.array([0.0, 0]), centroids, np.full(3, 2.0), t=3.0)  # units of the radius
    np.testing.assert_allclose(p[1:], np.exp(-2 * np.array([0.5, 2.0]) / 3.0))
