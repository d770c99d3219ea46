"""msgpack codecs and key layouts for the LMDB tables."""
from __future__ import annotations

import struct
from typing import Any

import msgpack
import numpy as np

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_F64 = struct.Struct(">d")


_ND = "__nd__"


def _default(obj: Any) -> Any:
    # NumPy travels as (dtype, shape, raw bytes): exact round trip, complex included.
    if isinstance(obj, np.ndarray):
        return {_ND: [obj.dtype.str, list(obj.shape), np.ascontiguousarray(obj).tobytes()]}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, complex):
        return {_ND: ["<c16", [], np.complex128(obj).tobytes()]}
    raise TypeError(f"cannot store {type(obj).__name__}")


def _hook(obj: dict) -> Any:
    if len(obj) == 1 and _ND in obj:
        dtype, shape, raw = obj[_ND]
        arr = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        return arr[()] if not shape else arr
    return obj


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True, default=_default)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False, object_hook=_hook)


def u32(n: int) -> bytes:
    return _U32.pack(n)


def u64(n: int) -> bytes:
    return _U64.pack(n)


def read_u64(b: bytes) -> int:
    return _U64.unpack(b)[0]


def read_u32(b: bytes) -> int:
    return _U32.unpack(b)[0]


def record_key(cid: int, rid: str) -> bytes:
    return _U32.pack(cid) + rid.encode()


def iid_key(cid: int, iid: int) -> bytes:
    return _U32.pack(cid) + _U64.pack(iid)


def expiry_key(expires_at: float, cid: int, rid: str) -> bytes:
    # Big-endian positive doubles sort by value, so a cursor walks expiries in time order.
    return _F64.pack(expires_at) + _U32.pack(cid) + rid.encode()


def read_expiry_key(key: bytes) -> tuple[float, int, str]:
    return _F64.unpack(key[:8])[0], _U32.unpack(key[8:12])[0], key[12:].decode()


def vector_bytes(v: np.ndarray) -> bytes:
    return np.ascontiguousarray(v, dtype="<f4").tobytes()


def vector_from(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4").astype(np.float32)
