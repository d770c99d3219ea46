"""Entanglement groups: members move together on update and collapse together on measure.

A group is ``{"members": [ids], "strength": ρ}``. Records sharing several groups have one
correlation, the chance that at least one group's collapse fires:

    ρ_ab = 1 − Π_g (1 − ρ_g)   over the groups g holding both a and b;   ρ_aa = 1.

``update``, correlated collapse and ``correlation`` all use ρ_ab. A group keeps its strength:
adding members never changes the correlation of pairs already in it.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qstore import records
from qstore.errors import InvalidArgument
from qstore.records import Doc
from qstore.storage import codec

Group = dict[str, Any]


def group_key(cid: int, group: str) -> bytes:
    return codec.u32(cid) + b"G" + group.encode()


def member_key(cid: int, rid: str) -> bytes:
    """The groups a record belongs to, so that partners are found without a scan."""
    return codec.u32(cid) + b"M" + rid.encode()


def check_strength(strength: Any) -> float:
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 <= strength <= 1.0:
        raise InvalidArgument(f"strength ρ must be a number in [0, 1], got {strength!r}", "invalid_strength")
    return float(strength)


def joined(group: Group | None, name: str, ids: list[str], strength: float) -> Group:
    """``group`` with ``ids`` added (a new group when it does not exist)."""
    if group is None:
        if len(ids) < 2:
            raise InvalidArgument("a new group needs at least two ids", "invalid_argument")
        return {"members": list(ids), "strength": strength}
    if strength != group["strength"]:
        raise InvalidArgument(f"group {name!r} has strength {group['strength']}; add members with that "
                              "strength, or use a new group", "invalid_strength")
    return {**group, "members": group["members"] + [r for r in ids if r not in group["members"]]}


def without(group: Group, ids: list[str] | None) -> Group | None:
    """``group`` without ``ids`` (all of them for None); a group of fewer than two dissolves."""
    members = [] if ids is None else [m for m in group["members"] if m not in ids]
    return {**group, "members": members} if len(members) >= 2 else None


def pair_rho(strengths: list[float]) -> float:
    return 1.0 - float(np.prod([1.0 - s for s in strengths]))


def partner_rhos(rid: str, groups: list[Group]) -> dict[str, float]:
    """ρ with every partner of ``rid``, given the groups it belongs to; partners in id order."""
    shared: dict[str, list[float]] = {}
    for g in groups:
        for m in g["members"]:
            if m != rid:
                shared.setdefault(m, []).append(g["strength"])
    return {m: pair_rho(shared[m]) for m in sorted(shared)}


def correlation(a: str, b: str, groups_of_a: list[Group]) -> float:
    return 1.0 if a == b else partner_rhos(a, groups_of_a).get(b, 0.0)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def moved(doc: Doc, vector: np.ndarray) -> Doc:
    """The record with its most probable branch replaced by ``vector``."""
    top = records.top_branch(doc)
    branches = [(vector if j == top else codec.vector_from(b[1]), b[2], complex(b[3], b[4]))
                for j, b in enumerate(doc["b"])]
    return records.make_doc(branches, doc["m"], doc["e"], doc["v"] + 1)


def update(rid: str, doc: Doc, new: np.ndarray, partners: list[tuple[str, Doc, float]],
           metric: str) -> dict[str, Doc]:
    """Documents after setting ``rid``'s vector to ``new``: each partner (id, visible document, ρ)
    moves by ρ·(new − old), on the unit sphere under the cosine metric."""
    old = records.branch_vector(doc, records.top_branch(doc))
    cosine = metric == "cosine"
    delta = (_unit(new) - _unit(old)) if cosine else (new - old)
    out = {rid: moved(doc, new)}
    for pid, pdoc, rho in partners:
        if rho == 0.0:
            continue
        pv = records.branch_vector(pdoc, records.top_branch(pdoc)).astype(np.float64)
        target = (_unit(pv) if cosine else pv) + rho * delta
        if cosine:
            norm = np.linalg.norm(target)
            target = target / norm if norm > 0 else _unit(pv)
        out[pid] = moved(pdoc, target.astype(np.float32))
    return out
