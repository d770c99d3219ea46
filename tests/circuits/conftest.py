"""Shared fixtures for the circuits tests."""
from __future__ import annotations

import numpy as np
import pytest

from .fake_ionq import FakeIonQ


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


@pytest.fixture
def fake_ionq():
    with FakeIonQ() as fake:
        yield fake
