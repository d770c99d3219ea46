"""Atomic index snapshots: write a temp file, fsync, rename, fsync the directory."""
from __future__ import annotations

import os
import struct

import numpy as np

MAGIC = b"QSTORE-IDX1\n"
_HEAD = struct.Struct(">QQ")  # last sequence contained, number of tombstones


def write_snapshot(path: str, seq: int, tombstones: np.ndarray, data: bytes) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(_HEAD.pack(seq, len(tombstones)))
        f.write(np.asarray(tombstones, dtype=">i8").tobytes())
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dirfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)


def read_snapshot(path: str) -> tuple[int, np.ndarray, bytes] | None:
    """Return (seq, tombstones, index bytes), or None when missing or unreadable."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return None
    if not raw.startswith(MAGIC) or len(raw) < len(MAGIC) + _HEAD.size:
        return None
    off = len(MAGIC)
    seq, n = _HEAD.unpack_from(raw, off)
    off += _HEAD.size
    tombs = np.frombuffer(raw, dtype=">i8", count=n, offset=off).astype(np.int64)
    return seq, tombs, raw[off + 8 * n:]
