import numpy as np
import pytest

import qstore


class FakeClock:
    """Injectable time for decoherence tests: no sleeps."""

    def __init__(self, t: float = 1_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def db(tmp_path, clock):
    database = await qstore.Database.open(str(tmp_path / "db"), clock=clock, sweep_interval=None)
    yield database
    await database.close()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
