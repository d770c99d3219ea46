"""Verified index snapshots: written atomically (temp file, fsync, rename, fsync the directory).

Layout: MAGIC | header | BLAKE2b-256 digest | tombstones (>i8) | serialized FAISS index.
The header names the collection (its cid), the last change sequence the index contains, the
live vector count and the sizes of what follows; the digest covers the header and everything
after it, so a truncated, bit-flipped or foreign file is refused before FAISS parses it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass

import faiss
import numpy as np

MAGIC = b"QSTORE-IDX2\n"
_HEAD = struct.Struct(">IQQQQ")  # cid, last sequence, live vectors, tombstones, index bytes
_DIGEST = 32
_FIXED = len(MAGIC) + _HEAD.size + _DIGEST


class SnapshotInvalid(Exception):
    """The file is not a sound snapshot of this collection; the reason says why."""


@dataclass(frozen=True)
class Snapshot:
    cid: int
    seq: int
    count: int
    tombstones: np.ndarray
    data: bytes


def _digest(head: bytes, tombs: bytes, data: bytes | memoryview | np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=_DIGEST)
    for part in (head, tombs, data):
        h.update(part)
    return h.digest()


def decode(raw: bytes) -> Snapshot:
    """Parse and verify a snapshot's bytes (raises SnapshotInvalid)."""
    if not raw.startswith(MAGIC):
        raise SnapshotInvalid("not a Q-Store snapshot (bad magic or an older format)")
    if len(raw) < _FIXED:
        raise SnapshotInvalid(f"truncated: {len(raw)} bytes, the header alone needs {_FIXED}")
    off = len(MAGIC)
    head = raw[off:off + _HEAD.size]
    cid, seq, count, n_tombs, n_data = _HEAD.unpack(head)
    if len(raw) != _FIXED + 8 * n_tombs + n_data:
        raise SnapshotInvalid(f"truncated or padded: {len(raw)} bytes, header says {_FIXED + 8 * n_tombs + n_data}")
    digest = raw[off + _HEAD.size:_FIXED]
    view = memoryview(raw)
    tombs = view[_FIXED:_FIXED + 8 * n_tombs]
    data = view[_FIXED + 8 * n_tombs:]
    if _digest(head, tombs, data) != digest:
        raise SnapshotInvalid("checksum mismatch: the file was altered or damaged")
    return Snapshot(cid, seq, count, np.frombuffer(tombs, dtype=">i8").astype(np.int64), bytes(data))


class SnapshotWriter:
    """Writes one snapshot in two steps, so the index is never copied in memory (at 1M vectors
    it is 1.7 GB, and a serialized copy doubled the process for as long as a write took):
    ``body`` streams the tombstones and the index into the temp file, on the thread that owns
    the index; ``commit`` digests what was written, fills in the header, syncs and renames it,
    on any thread. The file's bytes are the same as a one-step write's."""

    def __init__(self, path: str):
        self.path, self.tmp = path, f"{path}.tmp"
        self._sizes = (0, 0)

    def body(self, tombstones: np.ndarray, index: faiss.Index) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        tombs = np.asarray(tombstones, dtype=">i8").tobytes()
        try:
            with open(self.tmp, "wb") as f:
                f.write(bytes(_FIXED))  # MAGIC, header and digest: known once the index is written
                f.write(tombs)
                start = f.tell()
                faiss.write_index(index, faiss.PyCallbackIOWriter(f.write))
                self._sizes = (len(tombs) // 8, f.tell() - start)
        except BaseException:
            self.discard()
            raise

    def commit(self, cid: int, seq: int, count: int) -> None:
        head = _HEAD.pack(cid, seq, count, *self._sizes)
        h = hashlib.blake2b(head, digest_size=_DIGEST)
        try:
            with open(self.tmp, "r+b") as f:
                f.seek(_FIXED)
                while chunk := f.read(1 << 22):
                    h.update(chunk)
                f.seek(0)
                f.write(MAGIC + head + h.digest())
                f.flush()
                os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        except BaseException:
            self.discard()
            raise
        fsync_dir(os.path.dirname(self.path) or ".")

    def discard(self) -> None:
        # A half-written temp file on a full disk would hold the space the next write needs.
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp)


def fsync_dir(path: str) -> None:
    dirfd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def read_snapshot(path: str) -> Snapshot | None:
    """The verified snapshot at ``path``; None when there is none; SnapshotInvalid when damaged."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    return decode(raw)
