"""Born-weighted ranking is exact: on a flat index it equals brute force, whatever the branches."""
import asyncio

import numpy as np
import pytest

from qstore.sample_data import load_embeddings


def v(*xs):
    return np.array(xs, dtype=np.float32)


def sim(metric, q, X):
    if metric == "cosine":
        return (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    if metric == "l2":
        return -((X - q) ** 2).sum(1)
    return X @ q


def brute_force(records, metric, q, k, context=None):
    """(id, Born score) best first, from the records as stored; with a context, over the
    branches carrying it (renormalised), and records without one left out."""
    scores = {}
    for rec in records:
        branches = [b for b in rec.branches if context is None or b.context == context]
        if branches:
            p = np.array([abs(b.amplitude) ** 2 for b in branches])
            scores[rec.id] = float(p @ sim(metric, q, np.stack([b.vector for b in branches])) / p.sum())
    return sorted(scores.items(), key=lambda kv: -kv[1])[:k]


async def test_a_record_outside_the_branch_pool_still_ranks(db):
    """q = e₀: A1 and A2 own the two nearest branches but score −0.98; B scores 0.5."""
    col = await db.create_collection("adv", dim=2, metric="cosine", index={"type": "flat"})
    for rid in ("A1", "A2"):
        await col.superpose(rid, [(v(1, 0), "near", 0.1), (v(-1, 0), "far", np.sqrt(0.99))])
    await col.upsert(["B"], v(0.5, np.sqrt(0.75))[None, :])
    hits = await col.query(v(1, 0), top_k=1)
    assert [h.id for h in hits] == ["B"] and hits[0].score == pytest.approx(0.5, abs=1e-6)
    hits = await col.query(v(1, 0), top_k=3)
    assert hits[0].id == "B" and {h.id for h in hits[1:]} == {"A1", "A2"}
    np.testing.assert_allclose([h.score for h in hits], [0.5, -0.98, -0.98], atol=1e-6)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
async def test_flat_ranking_equals_brute_force_with_2_to_12_branches(fastdb, metric):
    rng = np.random.default_rng(7)
    dim = 8
    col = await fastdb.create_collection("born", dim=dim, metric=metric, index={"type": "flat"})
    for r in range(120):
        n = int(rng.integers(2, 13))
        amps = rng.normal(size=n) + 1j * rng.normal(size=n)
        await col.superpose(f"s{r}", [(rng.normal(size=dim), f"c{j % 3}", a) for j, a in enumerate(amps)])
    await col.upsert([f"p{i}" for i in range(60)], rng.normal(size=(60, dim)))
    stored = await col.get([f"s{r}" for r in range(120)] + [f"p{i}" for i in range(60)])
    Q = rng.normal(size=(15, dim)).astype(np.float32)
    for q, batch in zip(Q, await col.query_batch(Q, top_k=7)):
        for k, context in ((1, None), (7, None), (25, None), (7, "c1")):
            expected = brute_force(stored, metric, q, k, context)
            hits = await col.query(q, top_k=k, context=context)
            assert [h.id for h in hits] == [rid for rid, _ in expected]
            np.testing.assert_allclose([h.score for h in hits], [s for _, s in expected], rtol=1e-4, atol=1e-4)
        assert [h.id for h in batch] == [rid for rid, _ in brute_force(stored, metric, q, 7)]
    assert len(await col.query(rng.normal(size=dim), top_k=1000)) == 180  # every record, once


@pytest.mark.parametrize("index", [{"type": "hnsw", "m": 16, "ef_construction": 100, "ef_search": 32},
                                   {"type": "ivf", "nlist": 32, "nprobe": 4, "train_size": 1300}],
                         ids=["hnsw", "ivf"])
async def test_born_recall_matches_the_index_plain_recall(fastdb, index):
    """Recall@10 against brute force: Born ranking on superposed records vs plain search on the
    same vectors as plain records, with the same index."""
    X, _, _ = load_embeddings(4100)
    data, queries = X[:4000], X[4000:]
    rng = np.random.default_rng(3)
    k = 10
    plain = await fastdb.create_collection("plain", dim=X.shape[1], index=index)
    await plain.upsert([str(i) for i in range(len(data))], data)
    sup = await fastdb.create_collection("sup", dim=X.shape[1], index=index)
    sizes = rng.integers(2, 7, size=len(data))
    starts = np.concatenate([[0], np.cumsum(sizes)])
    starts = starts[starts < len(data)]  # records of 2-6 branches over the same vectors (the last may have 1)
    probs = rng.uniform(0.2, 1.0, size=len(data))
    for r, a in enumerate(starts):
        b = starts[r + 1] if r + 1 < len(starts) else len(data)
        probs[a:b] /= probs[a:b].sum()
    await asyncio.gather(*[sup.superpose(f"s{r}", [(data[j], None, np.sqrt(probs[j])) for j in
                                                    range(a, starts[r + 1] if r + 1 < len(starts) else len(data))])
                           for r, a in enumerate(starts)])
    plain_recall = born_recall = 0.0
    for q in queries:
        sims = data @ q
        exact = set(np.argsort(-sims)[:k].astype(str))
        plain_recall += len(exact & {h.id for h in await plain.query(q, top_k=k)}) / k
        born = np.add.reduceat(probs * sims, starts)
        exact_born = {f"s{r}" for r in np.argsort(-born)[:k]}
        born_recall += len(exact_born & {h.id for h in await sup.query(q, top_k=k)}) / k
    plain_recall /= len(queries)
    born_recall /= len(queries)
    print(f"recall@{k}: born {born_recall:.3f} plain {plain_recall:.3f}")
    assert born_recall >= plain_recall - 0.02, (born_recall, plain_recall)


async def test_hnsw_beam_widens_for_a_top_k_above_ef_search(fastdb):
    """FAISS keeps efSearch when k exceeds it; the Born pools (and any large top_k) need the beam."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 16)).astype(np.float32)
    col = await fastdb.create_collection("beam", dim=16, metric="l2",
                                         index={"type": "hnsw", "m": 8, "ef_construction": 40, "ef_search": 16})
    await col.upsert([str(i) for i in range(len(X))], X)
    recall = []
    for q in rng.normal(size=(10, 16)).astype(np.float32):
        exact = set(np.argsort(((X - q) ** 2).sum(1))[:300].astype(str))
        recall.append(len(exact & {h.id for h in await col.query(q, top_k=300)}) / 300)
    assert np.mean(recall) > 0.9, np.mean(recall)
