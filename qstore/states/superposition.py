"""Superposed records: several (vector, context, amplitude) branches with Σ|α|² = 1."""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from qstore import records, validation
from qstore.errors import InvalidArgument
from qstore.records import Doc

Part = tuple[np.ndarray, "str | None", complex]


def _amplitude(amp: Any) -> complex:
    # numbers.Number admits NumPy scalars; bool is a Number too, but True is not an amplitude.
    if isinstance(amp, (bool, np.bool_)) or not isinstance(amp, numbers.Number):
        raise InvalidArgument(f"amplitude {amp!r} is not a number", "invalid_amplitudes")
    amp = complex(amp)
    if not np.isfinite([amp.real, amp.imag]).all():
        raise InvalidArgument("amplitudes must be finite", "invalid_amplitudes")
    return amp


def normalise_branches(branches: Any, dim: int, metric: str) -> list[Part]:
    """Validate branches and scale the amplitudes so that Σ|α|² = 1."""
    if not isinstance(branches, (list, tuple)) or not branches:
        raise InvalidArgument("branches must be a non-empty list of (vector, context, amplitude)",
                              "invalid_amplitudes")
    parts: list[Part] = []
    for b in branches:
        if not isinstance(b, (list, tuple)) or len(b) != 3:
            raise InvalidArgument("each branch is (vector, context, amplitude)", "invalid_argument")
        vec, ctx, amp = b
        if ctx is not None and not isinstance(ctx, str):
            raise InvalidArgument(f"a branch context must be a string or None, got {ctx!r}", "invalid_argument")
        parts.append((validation.check_vectors(vec, dim, metric=metric, n=1)[0], ctx, _amplitude(amp)))
    alpha = np.array([a for _, _, a in parts], dtype=np.complex128)
    if not alpha.any():
        raise InvalidArgument("all amplitudes are zero; a superposition needs Σ|α|² > 0", "invalid_amplitudes")
    if not alpha.all():
        # A zero branch could never be measured, yet it would be indexed and match context queries.
        raise InvalidArgument(f"branch {int(np.argmin(np.abs(alpha)))} has amplitude 0; leave it out",
                              "invalid_argument")
    alpha /= np.sqrt((np.abs(alpha) ** 2).sum())
    return [(v, c, complex(a)) for (v, c, _), a in zip(parts, alpha)]


def superposed(parts: list[Part], metadata: dict[str, Any], expires_at: float | None, old: Doc | None) -> Doc:
    """The record that ``superpose`` writes, replacing ``old`` (the visible record, if any)."""
    return records.make_doc(parts, metadata, expires_at, records.next_version(old))
