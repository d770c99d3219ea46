"""Superposed records: several (vector, context, amplitude) branches, Σ|α|² = 1."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from qstore import records, validation
from qstore.errors import InvalidArgument
from qstore.storage import WriteContext

if TYPE_CHECKING:
    from qstore.collection import Collection


def normalise_branches(col: Collection, branches: Any) -> list[tuple[np.ndarray, str | None, complex]]:
    """Validate branches and scale the amplitudes so that Σ|α|² = 1."""
    if not isinstance(branches, (list, tuple)) or not branches:
        raise InvalidArgument("branches must be a non-empty list of (vector, context, amplitude)",
                              "invalid_amplitudes")
    vecs, contexts, amps = [], [], []
    for b in branches:
        if not isinstance(b, (list, tuple)) or len(b) != 3:
            raise InvalidArgument("each branch is (vector, context, amplitude)", "invalid_argument")
        vec, ctx, amp = b
        if ctx is not None and not isinstance(ctx, str):
            raise InvalidArgument(f"a branch context must be a string or None, got {ctx!r}", "invalid_argument")
        try:
            amp = complex(amp)
        except (TypeError, ValueError):
            raise InvalidArgument(f"amplitude {amp!r} is not a complex number", "invalid_amplitudes") from None
        if not np.isfinite([amp.real, amp.imag]).all():
            raise InvalidArgument("amplitudes must be finite", "invalid_amplitudes")
        vecs.append(vec)
        contexts.append(ctx)
        amps.append(amp)
    if len({np.shape(v) for v in vecs}) > 1:  # np.stack would raise a bare ValueError
        raise InvalidArgument(f"every branch vector needs dimension {col.dim}", "dimension_mismatch")
    arr = validation.check_vectors(np.stack([np.asarray(v, dtype=np.float32).ravel() for v in vecs])
                                   if all(np.ndim(v) == 1 for v in vecs) else vecs,
                                   col.dim, metric=col.metric, n=len(vecs))
    alpha = np.array(amps, dtype=np.complex128)
    norm = float(np.sqrt((np.abs(alpha) ** 2).sum()))
    if norm == 0.0:
        raise InvalidArgument("all amplitudes are zero; a superposition needs Σ|α|² > 0", "invalid_amplitudes")
    alpha /= norm
    return [(arr[i], contexts[i], complex(alpha[i])) for i in range(len(arr))]


async def superpose(col: Collection, rid: str, branches: Any, metadata: dict[str, Any] | None,
                    coherence_time: float | None) -> None:
    col._check_open()
    validation.check_id(rid)
    parts = normalise_branches(col, branches)
    md = validation.check_metadata(metadata)
    expires = col._expiry_for(coherence_time)

    def write(ctx: WriteContext) -> None:
        iids = col._alloc(ctx, len(parts))
        old = col._read_doc(ctx, rid)
        doc = records.make_doc([(iid, v, c, a) for iid, (v, c, a) in zip(iids, parts)], md, expires,
                               (old["v"] + 1) if old else 1)
        col._commit_docs(ctx, {rid: doc})

    await col._write(write)
