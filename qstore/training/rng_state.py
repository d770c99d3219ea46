"""NumPy generator state as text, so it survives msgpack (PCG64 holds 128-bit integers)."""
from __future__ import annotations

import json

import numpy as np


def rng_state(rng: np.random.Generator) -> str:
    """The generator's exact ``bit_generator.state`` as JSON."""
    return json.dumps(rng.bit_generator.state)


def restore_rng(text: str) -> np.random.Generator:
    """A generator continuing exactly where the one ``rng_state`` saw left off."""
    state = json.loads(text)
    bit_generator = getattr(np.random, state["bit_generator"])()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
