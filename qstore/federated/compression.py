"""Compressed updates: stochastic (unbiased) quantisation to 4..16 bits, per-chunk scales, error feedback.

A delta is cut into chunks of ``chunk`` values; each chunk travels as its minimum and
maximum (float32) and one b-bit code per value, bit-packed. A value x in [lo, hi] becomes
code ⌊(x − lo)/s + u⌋ with u ~ U[0, 1) and s = (hi − lo)/(2^b − 1), so its decoded value
lo + code·s is x in expectation (QSGD-style stochastic rounding, Alistarh et al., 2017).
With error feedback (Seide et al., 2014; Karimireddy et al., 2019) the participant keeps
what rounding lost and adds it to its next delta, so errors do not accumulate over rounds.
The float32 bounds are the chunk's float64 extremes rounded outwards, so every value fits.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from qstore.errors import error

FIELDS = frozenset({"bits", "chunk", "codes", "lo", "hi", "length"})


@dataclass(frozen=True)
class Compression:
    """``{"bits": 4..16, "error_feedback": True, "chunk": 256}``."""

    bits: int = 8
    error_feedback: bool = True
    chunk: int = 256

    @classmethod
    def of(cls, value: Any) -> Compression | None:
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) - {"bits", "error_feedback", "chunk"}:
            raise error("invalid_argument", "compression must be a dict with bits (4..16), error_feedback, chunk")
        config = cls(**value)
        if isinstance(config.bits, bool) or not isinstance(config.bits, int) or not 4 <= config.bits <= 16:
            raise error("invalid_argument", f"compression.bits must be an integer in 4..16, got {config.bits!r}")
        if isinstance(config.chunk, bool) or not isinstance(config.chunk, int) or config.chunk < 1:
            raise error("invalid_argument", f"compression.chunk must be a positive integer, got {config.chunk!r}")
        if not isinstance(config.error_feedback, bool):
            raise error("invalid_argument", "compression.error_feedback must be true or false")
        return config

    def to_wire(self) -> dict[str, Any]:
        return {"bits": self.bits, "error_feedback": self.error_feedback, "chunk": self.chunk}


def _bounds(x: np.ndarray, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    n_chunks = math.ceil(len(x) / chunk)
    padded = np.concatenate([x, np.full(n_chunks * chunk - len(x), x[-1] if len(x) else 0.0)])
    rows = padded.reshape(n_chunks, chunk)
    lo = np.nextafter(rows.min(axis=1).astype(np.float32), np.float32(-np.inf))
    hi = np.nextafter(rows.max(axis=1).astype(np.float32), np.float32(np.inf))
    return lo, hi


def compress(x: np.ndarray, bits: int, chunk: int, rng: np.random.Generator) -> tuple[dict[str, Any], np.ndarray]:
    """(the wire form, the decoded vector the receiver will see)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = _bounds(x, chunk)
    which = np.arange(len(x)) // chunk
    levels = (1 << bits) - 1
    step = (hi.astype(np.float64) - lo) / levels
    safe = np.where(step > 0, step, 1.0)
    position = (x - lo[which]) / safe[which]
    codes = np.clip(np.floor(position + rng.random(len(x))), 0, levels).astype(np.uint32)
    packed = np.packbits(((codes[:, None] >> np.arange(bits, dtype=np.uint32)) & 1).astype(np.uint8).ravel())
    wire = {"bits": bits, "chunk": chunk, "length": len(x), "codes": packed.tobytes(), "lo": lo, "hi": hi}
    return wire, lo[which] + codes * step[which]


def decompress(doc: Any, length: int) -> np.ndarray:
    """The decoded delta from its wire form; anything inconsistent is ``invalid_argument``."""
    if not isinstance(doc, dict) or set(doc) != FIELDS:
        raise error("invalid_argument", f"compressed delta: expected the fields {sorted(FIELDS)}")
    bits, chunk, n = doc["bits"], doc["chunk"], doc["length"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (bits, chunk, n)) or not 4 <= bits <= 16 \
            or chunk < 1 or n != length:
        raise error("invalid_argument", f"compressed delta: bits 4..16, chunk >= 1 and length {length} expected")
    n_chunks = math.ceil(n / chunk)
    lo, hi = (np.asarray(doc[k], dtype=np.float64) for k in ("lo", "hi"))
    if lo.shape != (n_chunks,) or hi.shape != (n_chunks,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()) \
            or (hi < lo).any():
        raise error("invalid_argument", f"compressed delta: {n_chunks} finite chunk bounds lo <= hi expected")
    codes_raw = doc["codes"]
    if not isinstance(codes_raw, bytes) or len(codes_raw) != math.ceil(n * bits / 8):
        raise error("invalid_argument", f"compressed delta: {math.ceil(n * bits / 8)} bytes of codes expected")
    bit_rows = np.unpackbits(np.frombuffer(codes_raw, dtype=np.uint8))[:n * bits].reshape(n, bits)
    codes = (bit_rows.astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(axis=1)
    which = np.arange(n) // chunk
    return lo[which] + codes * ((hi - lo) / ((1 << bits) - 1))[which]


def wire_bytes(doc: dict[str, Any]) -> int:
    """Payload bytes of a compressed delta: the codes and two float32 bounds per chunk."""
    return len(doc["codes"]) + 8 * len(doc["lo"])


class ErrorFeedback:
    """A participant's memory of what quantisation lost, per run (bounded: oldest runs forgotten)."""

    def __init__(self, runs: int = 64):
        self.runs = runs
        self._residual: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()  # a server trains several jobs at once

    def apply(self, key: str, delta: np.ndarray, config: Compression, rng: np.random.Generator
              ) -> tuple[dict[str, Any], np.ndarray]:
        with self._lock:
            carried = self._residual.pop(key, None) if config.error_feedback else None
        target = delta if carried is None or carried.shape != delta.shape else delta + carried
        wire, decoded = compress(target, config.bits, config.chunk, rng)
        if config.error_feedback:
            with self._lock:
                self._residual[key] = target - decoded
                while len(self._residual) > self.runs:
                    del self._residual[next(iter(self._residual))]
        return wire, decoded
