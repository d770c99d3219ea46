"""``Database.check()``: verify everything derived from the LMDB records, and optionally repair it.

LMDB's record documents are the truth. Checked against them, per collection:
  * the FAISS index (the same vector ids, no more, no fewer) and its snapshot file;
  * the in-memory summaries and expiry heap;
  * the derived LMDB tables: ``rev`` (vector id -> record), ``expiry``, the id counter;
  * entanglement groups (members exist, both directions of the membership agree);
  * tunneling regions (shapes and finite values).
Plus rows and files left behind by collections that no longer exist. The check runs in the
writer thread once every acknowledged write is indexed, so it sees one consistent state;
writers wait meanwhile.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from qstore.index.snapshot import SnapshotInvalid, read_snapshot
from qstore.storage import WriteContext, codec, scan

if TYPE_CHECKING:
    from qstore.collection import Collection
    from qstore.database import Database

log = logging.getLogger(__name__)


@dataclass
class Problem:
    collection: str | None
    kind: str  # index | summary | snapshot | rev | expiry | counter | group | region | orphan
    message: str
    repaired: bool = False

    def __str__(self) -> str:
        where = f"{self.collection}: " if self.collection else ""
        return f"{'[repaired] ' if self.repaired else ''}{where}{self.kind}: {self.message}"


@dataclass
class CheckReport:
    collections: int = 0
    records: int = 0
    vectors: int = 0
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what opening the database already repaired

    @property
    def ok(self) -> bool:
        """True when nothing is wrong now (everything found was repaired, or nothing was found)."""
        return all(p.repaired for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "collections": self.collections, "records": self.records,
                "vectors": self.vectors, "problems": [p.__dict__ for p in self.problems], "notes": self.notes}


async def check(db: Database, repair: bool = False) -> CheckReport:
    report = CheckReport(notes=[c.snapshot_problem for c in db._collections.values() if c.snapshot_problem])

    def run(ctx: WriteContext) -> None:
        db._storage.wait_applied()
        cols = list(db._collections.values())
        for col in cols:
            col.index.wait_for_rebuild()
            _check_collection(ctx, col, report, repair)
        _check_orphans(ctx, db, {c.cid for c in cols}, report, repair)

    await db._storage.write(run)
    if repair and any(p.repaired for p in report.problems):
        for col in db._collections.values():
            if col.snapshot_seq == 0:
                await db._storage.run(col.snapshot)
    for p in report.problems:
        log.warning("check: %s", p)
    return report


def _check_collection(ctx: WriteContext, col: Collection, report: CheckReport, repair: bool) -> None:
    name = col.name

    def problem(kind: str, message: str, fixed: bool) -> None:
        report.problems.append(Problem(name, kind, message, fixed))

    prefix = codec.u32(col.cid)
    docs = {key[4:].decode(): codec.unpack(raw) for key, raw in scan(ctx.cursor("records"), prefix)}
    owner = {b[0]: rid for rid, doc in docs.items() for b in doc["b"]}
    report.collections += 1
    report.records += len(docs)
    report.vectors += len(owner)

    # derived LMDB tables
    rev = _prefixed(ctx, "rev", prefix)
    bad_rev = [k for k, v in rev.items() if owner.get(codec.read_u64(k[4:])) != v.decode()]
    missing_rev = [i for i, rid in owner.items() if codec.iid_key(col.cid, i) not in rev]
    if bad_rev or missing_rev:
        if repair:
            for k in bad_rev:
                ctx.delete("rev", k)
            for i in missing_rev:
                ctx.put("rev", codec.iid_key(col.cid, i), owner[i].encode())
        problem("rev", f"{len(bad_rev)} stale and {len(missing_rev)} missing vector-id -> record entries", repair)
    want_expiry = {codec.expiry_key(d["e"], col.cid, rid) for rid, d in docs.items() if d["e"] is not None}
    have_expiry = {k for k, _ in ctx.cursor("expiry") if codec.read_expiry_key(k)[1] == col.cid}
    if want_expiry != have_expiry:
        if repair:
            for k in have_expiry - want_expiry:
                ctx.delete("expiry", k)
            for k in want_expiry - have_expiry:
                ctx.put("expiry", k, b"")
        problem("expiry", f"{len(want_expiry - have_expiry)} missing and {len(have_expiry - want_expiry)} stale "
                          "expiry entries", repair)
    raw = ctx.get("meta", b"next_iid:" + prefix)
    next_iid = codec.read_u64(raw) if raw else 0
    if owner and max(owner) >= next_iid:
        if repair:
            ctx.put("meta", b"next_iid:" + prefix, codec.u64(max(owner) + 1))
        problem("counter", f"next vector id {next_iid} would reuse stored id {max(owner)}", repair)

    # in-memory state
    index_problem = col.index_mismatch()
    summary_problems = col.summary_mismatch(docs)
    if index_problem or summary_problems:
        if repair:
            col.rebuild_derived(ctx.txn)
        for msg in ([index_problem] if index_problem else []):
            problem("index", msg, repair)
        for msg in summary_problems[:20]:
            problem("summary", msg, repair)
    try:
        snap = read_snapshot(col.snapshot_path)
        if snap is not None and (snap.cid != col.cid or snap.seq > ctx.storage.last_seq):
            raise SnapshotInvalid(f"it names collection id {snap.cid} at sequence {snap.seq}")
    except (SnapshotInvalid, OSError) as exc:
        if repair:
            col.snapshot_seq = 0  # written afresh below, from the verified index
        problem("snapshot", f"{col.snapshot_path}: {exc}", repair)

    _check_groups(ctx, col, docs, problem, repair)
    _check_regions(ctx, col, problem, repair)


def _check_groups(ctx: WriteContext, col: Collection, docs: dict[str, Any], problem: Any, repair: bool) -> None:
    # Layout of qstore.states.entanglement: cid+"G"+group -> {members, strength}; cid+"M"+id -> [groups].
    gpre, mpre = codec.u32(col.cid) + b"G", codec.u32(col.cid) + b"M"
    groups = {k[5:].decode(): codec.unpack(v) for k, v in _prefixed(ctx, "groups", gpre).items()}
    member_of = {k[5:].decode(): codec.unpack(v) for k, v in _prefixed(ctx, "groups", mpre).items()}
    fixed_groups: dict[str, Any] = {}
    for name, g in groups.items():
        live = [m for m in g["members"] if m in docs]
        if len(live) != len(g["members"]) or len(live) < 2 or not 0.0 <= g["strength"] <= 1.0:
            problem("group", f"group {name!r}: {len(g['members']) - len(live)} member(s) missing, "
                             f"{len(live)} left, strength {g['strength']}", repair)
        if len(live) >= 2 and 0.0 <= g["strength"] <= 1.0:
            fixed_groups[name] = {**g, "members": live}
    want_member_of: dict[str, list[str]] = {}
    for name, g in fixed_groups.items():
        for m in g["members"]:
            want_member_of.setdefault(m, []).append(name)
    want_member_of = {m: sorted(set(gs)) for m, gs in want_member_of.items()}
    wrong = [m for m in set(member_of) | set(want_member_of)
             if sorted(set(member_of.get(m, []))) != want_member_of.get(m, [])]
    if wrong:
        problem("group", f"membership lists of {len(wrong)} record(s) disagree with their groups "
                         f"(e.g. {min(wrong)!r})", repair)
    if repair:
        for name, g in groups.items():
            if name not in fixed_groups:
                ctx.delete("groups", gpre + name.encode())
            elif fixed_groups[name] != g:
                ctx.put("groups", gpre + name.encode(), codec.pack(fixed_groups[name]))
        for m in wrong:
            if m in want_member_of:
                ctx.put("groups", mpre + m.encode(), codec.pack(want_member_of[m]))
            else:
                ctx.delete("groups", mpre + m.encode())


def _check_regions(ctx: WriteContext, col: Collection, problem: Any, repair: bool) -> None:
    r = col.regions
    if r is None:
        return
    try:
        c, radii = np.asarray(r["centroids"]), np.asarray(r["radii"])
        sound = (c.ndim == 2 and c.shape[0] >= 1 and c.shape[1] == col.dim and radii.shape == (c.shape[0],)
                 and np.isfinite(c).all() and np.isfinite(radii).all() and (radii > 0).all()
                 and int(r["n"]) >= 0)
    except (KeyError, TypeError, ValueError):
        sound = False
    if not sound:
        if repair:  # tunneling rebuilds regions on its next query when there are none
            col.regions = None
            ctx.put("meta", b"col:" + col.name.encode(), codec.pack(col.config))
        problem("region", "tunneling regions are malformed", repair)


def _check_orphans(ctx: WriteContext, db: Database, live: set[int], report: CheckReport, repair: bool) -> None:
    """Rows and snapshot files of collections that no longer exist (a drop removes them all)."""
    for table in ("records", "rev", "groups"):
        stale = [k for k, _ in ctx.cursor(table) if codec.read_u32(k[:4]) not in live]
        if stale:
            if repair:
                for k in stale:
                    ctx.delete(table, k)
            report.problems.append(Problem(None, "orphan", f"{len(stale)} {table} row(s) of dropped "
                                                           "collections", repair))
    stale = [k for k, _ in ctx.cursor("expiry") if codec.read_expiry_key(k)[1] not in live]
    if stale:
        if repair:
            for k in stale:
                ctx.delete("expiry", k)
        report.problems.append(Problem(None, "orphan", f"{len(stale)} expiry row(s) of dropped collections",
                                       repair))
    for path in stray_index_files(db.path, live):
        if repair:
            os.remove(path)
        report.problems.append(Problem(None, "orphan", f"stray index file {path}", repair))


def stray_index_files(path: str, live: set[int]) -> list[str]:
    """Files under indexes/ that no live collection owns: temp files of interrupted snapshots,
    snapshots of dropped collections."""
    folder = os.path.join(path, "indexes")
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    owned = {f"{cid}.faiss" for cid in live}
    return [os.path.join(folder, n) for n in sorted(names) if n not in owned]


def _prefixed(ctx: WriteContext, table: str, prefix: bytes) -> dict[bytes, bytes]:
    return {bytes(k): bytes(v) for k, v in scan(ctx.cursor(table), prefix)}
