"""Measurement: pick a branch with probability |α_i|², optionally collapsing durably.

A collapse onto a branch labelled ``c`` propagates through entanglement: each partner with a
``c`` branch collapses to it (its most probable one) with probability ρ_ab, the pair's
correlation. Randomness comes in as uniform draws in [0, 1), so a seeded measurement is a
pure function of the documents and the seed.
"""
from __future__ import annotations

import numpy as np

from qstore import records
from qstore.errors import NotFound
from qstore.records import Doc


def probabilities(doc: Doc, context: str | None) -> np.ndarray:
    """Branch probabilities, projected onto ``context`` and renormalised when one is given."""
    probs = records.probabilities(doc)
    if context is not None:
        mask = np.array([b[2] == context for b in doc["b"]]) & (probs > 0)  # zero branches: refused now
        if not mask.any():
            raise NotFound(f"the record has no branch with context {context!r}", "context_not_found")
        probs = np.where(mask, probs, 0.0)
    return probs / probs.sum()


def choose(doc: Doc, context: str | None, u: float) -> tuple[int, float]:
    """The branch that the uniform draw ``u`` selects (inverse CDF), and its probability."""
    probs = probabilities(doc, context)
    i = min(int(np.searchsorted(np.cumsum(probs), u, side="right")), len(probs) - 1)
    while probs[i] == 0.0:  # only reachable through rounding at the top of the CDF
        i -= 1
    return i, float(probs[i])


def collapsed(doc: Doc, i: int) -> Doc:
    """The record reduced to branch ``i`` with amplitude 1."""
    b = doc["b"][i]
    return {**doc, "b": [[records.UNASSIGNED, b[1], b[2], 1.0, 0.0]], "v": doc["v"] + 1}


def collapse(rid: str, doc: Doc, i: int, partners: list[tuple[str, Doc, float]],
             draws: np.ndarray) -> dict[str, Doc]:
    """Documents after collapsing ``rid`` onto branch ``i``: partner j (id, visible document, ρ)
    follows when ``draws[j] < ρ`` and it has a branch with the same context."""
    out = {rid: collapsed(doc, i)}
    label = doc["b"][i][2]
    if label is None:
        return out
    for (pid, pdoc, rho), u in zip(partners, draws):
        match = [j for j, b in enumerate(pdoc["b"]) if b[2] == label]
        if len(pdoc["b"]) > 1 and match and u < rho:
            probs = records.probabilities(pdoc)
            out[pid] = collapsed(pdoc, max(match, key=lambda j: (probs[j], -j)))
    return out
