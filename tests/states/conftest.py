import pytest

import qstore


@pytest.fixture
async def fastdb(tmp_path, clock):
    """sync=False: these tests check statistics, not durability, and write thousands of times."""
    database = await qstore.Database.open(str(tmp_path / "fast"), clock=clock, sweep_interval=None, sync=False)
    yield database
    await database.close()
