"""Online backup and restore of a data directory.

A backup is a directory holding
  * ``lmdb/data.mdb``: LMDB's compacting copy, taken inside one read transaction, so writers
    go on while it runs and the copy is one committed state;
  * ``indexes/<cid>.faiss``: each collection's verified snapshot, none newer than that state;
  * ``BACKUP.json``: format, change sequence, time, and the size and BLAKE2b digest of each file.
It is written under ``<out>.partial`` and renamed into place, so a backup that exists is whole.
Restoring verifies every digest before copying anything; opening the restored directory then
replays the change log past each snapshot, as after any restart.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from qstore.errors import AlreadyExists, InvalidArgument, NotFound
from qstore.index.snapshot import SnapshotInvalid, decode, fsync_dir
from qstore.storage import codec
from qstore.storage.environment import LAST_SEQ_KEY

if TYPE_CHECKING:
    from qstore.database import Database

log = logging.getLogger(__name__)

MANIFEST = "BACKUP.json"
FORMAT = 1
Progress = Callable[[str], None]


def take(db: Database, out: str, progress: Progress | None = None) -> dict[str, Any]:
    """Copy the live database ``db`` to the new directory ``out``; returns the manifest."""
    out = os.path.abspath(out)
    if os.path.exists(out):
        raise AlreadyExists(f"{out} exists; back up to a new path", "already_exists")
    tmp = out + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, "lmdb"))
    os.makedirs(os.path.join(tmp, "indexes"))
    storage = db._storage
    try:
        with _snapshot_locks(db) as cols:
            # Read the snapshots, then open the transaction, before any snapshot can advance: each
            # one is then no newer than the copy, and the change log still holds what follows it.
            snaps = {}
            for col in cols:
                try:
                    with open(col.snapshot_path, "rb") as f:
                        raw = f.read()
                    decode(raw)
                    snaps[col.cid] = raw
                except FileNotFoundError:
                    continue  # no snapshot yet: opening the restored copy builds the index from LMDB
                except SnapshotInvalid as exc:
                    log.warning("backup leaves out the snapshot of %s (%s); restore rebuilds it", col.name, exc)
            storage._gate.enter()  # the map must not be resized under an open transaction
            txn = storage.env.begin()
        try:
            raw_seq = txn.get(LAST_SEQ_KEY, db=storage.tables["meta"])
            seq = codec.read_u64(raw_seq) if raw_seq else 0
            storage.env.copy(os.path.join(tmp, "lmdb"), compact=True, txn=txn)
        finally:
            txn.abort()
            storage._gate.leave()
        if progress:
            progress("lmdb")
        for cid, raw in snaps.items():
            with open(os.path.join(tmp, "indexes", f"{cid}.faiss"), "wb") as f:
                f.write(raw)
                f.flush()
                os.fsync(f.fileno())
            if progress:
                progress(f"{cid}.faiss")
        manifest = {"format": FORMAT, "last_seq": seq, "created_at": time.time(), "source": db.path,
                    "files": {rel: _describe(os.path.join(tmp, rel)) for rel in _files(tmp)}}
        _write_json(os.path.join(tmp, MANIFEST), manifest)
        fsync_dir(os.path.join(tmp, "lmdb"))
        fsync_dir(os.path.join(tmp, "indexes"))
        os.replace(tmp, out)
        fsync_dir(os.path.dirname(out))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("backed up %s to %s at sequence %d", db.path, out, seq)
    return manifest


@contextlib.contextmanager
def _snapshot_locks(db: Database):
    cols = sorted(db._collections.values(), key=lambda c: c.cid)
    with contextlib.ExitStack() as stack:
        for col in cols:
            stack.enter_context(col._snapshot_lock)
        yield cols


def verify(backup: str) -> dict[str, Any]:
    """The manifest of a sound backup; InvalidArgument (``invalid_backup``) naming what is wrong."""
    path = os.path.join(backup, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise NotFound(f"{backup} is not a Q-Store backup (no {MANIFEST})", "not_found") from None
    except ValueError as exc:
        raise InvalidArgument(f"{path} is damaged: {exc}", "invalid_backup") from None
    if manifest.get("format") != FORMAT:
        raise InvalidArgument(f"{backup}: unknown backup format {manifest.get('format')!r}", "invalid_backup")
    files = manifest.get("files") or {}
    if "lmdb/data.mdb" not in files or set(_files(backup)) != set(files):
        raise InvalidArgument(f"{backup}: files differ from the manifest", "invalid_backup")
    for rel, want in files.items():
        if _describe(os.path.join(backup, rel)) != want:
            raise InvalidArgument(f"{backup}: {rel} is damaged (size or digest differ)", "invalid_backup")
    return manifest


def restore(backup: str, path: str, progress: Progress | None = None) -> dict[str, Any]:
    """Verify ``backup`` and copy it to the new (or empty) data directory ``path``."""
    manifest = verify(backup)
    path = os.path.abspath(path)
    if os.path.exists(path) and os.listdir(path):
        raise AlreadyExists(f"{path} is not empty; restore into a new directory", "already_exists")
    tmp = path + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel in manifest["files"]:
            os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
            with open(os.path.join(backup, rel), "rb") as src, open(os.path.join(tmp, rel), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            if progress:
                progress(rel)
        for sub in ("lmdb", "indexes"):
            os.makedirs(os.path.join(tmp, sub), exist_ok=True)
            fsync_dir(os.path.join(tmp, sub))
        if os.path.exists(path):
            os.rmdir(path)
        os.replace(tmp, path)
        fsync_dir(os.path.dirname(path))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("restored %s (sequence %d) into %s", backup, manifest["last_seq"], path)
    return manifest


def _files(root: str) -> list[str]:
    out = []
    for sub in ("lmdb", "indexes"):
        folder = os.path.join(root, sub)
        if os.path.isdir(folder):
            out.extend(f"{sub}/{name}" for name in sorted(os.listdir(folder)))
    return out


def _describe(path: str) -> dict[str, Any]:
    h = hashlib.blake2b(digest_size=32)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return {"bytes": size, "blake2b": h.hexdigest()}


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
