"""Fixtures for the training tests: a fast database, reference datasets, a real server subprocess."""
from __future__ import annotations

from functools import cache

import pytest

import qstore
from qstore.training.reference_datasets import ReferenceData, load_reference
from tests.servers import ServerProcess


@pytest.fixture
async def fastdb(tmp_path):
    """sync=False: these tests check training, not durability."""
    database = await qstore.Database.open(str(tmp_path / "train"), sync=False, sweep_interval=None)
    yield database
    await database.close()


@cache
def _reference(name: str, components: int | None) -> ReferenceData:
    return load_reference(name, components, seed=0)


@pytest.fixture
def reference():
    """``reference(name, components=4)``: a cached 70/30 split of a bundled scikit-learn dataset."""
    return lambda name, components=4: _reference(name, components)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = ServerProcess(tmp_path_factory.mktemp("train-server") / "data")
    yield srv
    assert srv.stop() == 0, srv.log.read_text()
