"""NumPy generator state as text, so it survives msgpack (PCG64 holds 128-bit integers).

The text comes back from stored checkpoints, which callers can write: the bit generator is
looked up in an allow-list, never by `getattr(np.random, name)`, and a malformed state is
`invalid_checkpoint`, not a NumPy exception.
"""
from __future__ import annotations

import json

import numpy as np

from qstore_client.errors import error

BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                                                np.random.Philox, np.random.SFC64)}


def rng_state(rng: np.random.Generator) -> str:
    """The generator's exact ``bit_generator.state`` as JSON."""
    return json.dumps(rng.bit_generator.state)


def restore_rng(text: str) -> np.random.Generator:
    """A generator continuing exactly where the one ``rng_state`` saw left off."""
    try:
        state = json.loads(text) if isinstance(text, str) else None
    except (ValueError, RecursionError):
        state = None
    if not isinstance(state, dict):
        raise error("invalid_checkpoint", "rng: expected a JSON map of a NumPy bit generator's state")
    cls = BIT_GENERATORS.get(state.get("bit_generator"))  # type: ignore[arg-type]
    if cls is None:
        raise error("invalid_checkpoint", f"rng: bit_generator must be one of {sorted(BIT_GENERATORS)}")
    bit_generator = cls()
    try:
        bit_generator.state = state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise error("invalid_checkpoint", f"rng: not a valid {cls.__name__} state ({exc})") from None
    return np.random.Generator(bit_generator)
