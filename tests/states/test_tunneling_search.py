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


@pytest.mark.parametrize("t", [1e-3, 0.5, 4.0])
async def test_every_strength_returns_min_of_top_k_and_matches(clustered, t):
    col, centers, _ = clustered
    for seed in range(5):
        q = centers[seed].astype(np.float32)
        assert len(await col.query(q, top_k=10, tunneling=t, seed=seed)) == 10
        hits = await col.query(q, top_k=10, tunneling=t, seed=seed, filter={"cluster": {"$in": [seed]}})
        assert len(hits) == 10 and {cluster_of(h) for h in hits} == {seed}  # the home region fills
        assert len(await col.query(q, top_k=500, tunneling=t, seed=seed, per_region=3)) == 500
    hits = await col.query(centers[0].astype(np.float32), top_k=10, tunneling=t, seed=0,
                           filter={"$and": [{"cluster": 1}, {"cluster": {"$ne": 1}}]})
    assert hits == []


async def test_regions_follow_data_that_moves_at_the_same_size(clustered):
    col, centers, X = clustered
    old = col.regions["centroids"].copy()
    moved = X + 100.0  # replace every record: same ids, same count, new place
    await col.upsert([f"{i // 100}-{i % 100}" for i in range(800)], moved)
    q = (centers[0] + 100.0).astype(np.float32)
    hits = await col.query(q, top_k=10, tunneling=1e6, seed=0)
    new = col.regions["centroids"]
    assert len(new) == 8  # build_regions(8)'s choice is kept
    nearest = np.sqrt(((new[:, None, :] - (centers[None] + 100.0)) ** 2).sum(-1)).min(1)
    assert nearest.max() < 3.0 and np.abs(new - old).min() > 50
    assert len({cluster_of(h) for h in hits}) > 1


async def test_regions_adopt_ivf_centroids_once_ivf_trains(db):
    rng = np.random.default_rng(2)
    col = await db.create_collection("ivf", dim=8, metric="l2",
                                     index={"type": "ivf", "nlist": 4, "nprobe": 4, "train_size": 300})
    X = rng.normal(size=(310, 8)).astype(np.float32)
    await col.upsert([str(i) for i in range(250)], X[:250])
    await col.query(X[0], top_k=5, tunneling=1.0, seed=0)
    assert col.regions["source"] == "kmeans"
    await col.upsert([str(i) for i in range(250, 310)], X[250:])  # trains IVF; little drift
    await db._storage.settle()  # training is part of the background graph work
    assert len(await col.query(X[0], top_k=5, tunneling=1.0, seed=0)) == 5
    assert col.regions["source"] == "ivf" and len(col.regions["centroids"]) == 4


async def test_fewer_than_two_vectors_answer_like_plain_search(db):
    col = await db.create_collection("tiny", dim=3)
    assert await col.query(np.ones(3), top_k=5, tunneling=2.0, seed=0) == []
    await col.upsert(["only"], np.ones((1, 3)))
    assert [h.id for h in await col.query(np.ones(3), top_k=5, tunneling=2.0, seed=0)] == ["only"]


async def test_writes_place_their_vectors_in_regions(clustered):
    col, centers, _ = clustered
    q = centers[0].astype(np.float32)
    await col.query(q, top_k=10, tunneling=1e6, seed=0)
    step = (q - centers[5]) / np.linalg.norm(q - centers[5])
    await col.upsert(["new"], (centers[5] + 8 * step)[None, :].astype(np.float32))  # cluster 5's member nearest q
    await col.delete(["5-0", "5-1"])
    hits = await col.query(q, top_k=16, tunneling=1e6, seed=0, per_region=2)
    assert "new" in {h.id for h in hits}
    assert sum(len(m) for m in col._region_map.members) == col.index.size == 799
