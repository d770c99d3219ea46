"""Both transports implement ``qstore_client.api``: every method of ``QStoreAPI`` and
``CollectionAPI`` has the same parameters (names, kinds, defaults) and the same result type on
``qstore.Database`` / ``qstore.Collection`` and on ``AsyncClient`` / its ``Collection``, and
neither side grows a public method the other lacks without saying so here. The client's
argument types match the protocol's exactly; the engine may accept wider ones (``Any``).
"""
from __future__ import annotations

import inspect
import types
import typing

import pytest

import qstore
import qstore_client
from qstore.stores.qdrant_collection import StoreCollection
from qstore_client.api import CollectionAPI, QStoreAPI

# (protocol, embedded implementation, remote implementation)
SURFACES = [(QStoreAPI, qstore.Database, qstore_client.AsyncClient),
            (CollectionAPI, qstore.Collection, StoreCollection, qstore_client.Collection)]
COLLECTION_CLASSES = {CollectionAPI, qstore.Collection, StoreCollection, qstore_client.Collection}
# Names the engine imports only for type checkers (qdrant-client loads when a Qdrant store is used).
HINT_NAMES = {"StoreCollection": StoreCollection}

# Public methods that belong to one side only, and why.
ONE_SIDED = {
    qstore.Database: {"open", "path",                              # the embedded lifecycle
                      "save_collection_config",                    # called by Collection
                      "check", "backup", "restore",                # offline maintenance (issue 14)
                      # the coordinator's federated participant registry (issue 18): local to its database
                      "register_participant", "list_participants", "remove_participant", "update_participant"},
    qstore_client.AsyncClient: {"health", "metrics",               # server endpoints
                                "job_kinds", "start_job", "list_jobs", "job", "job_result",
                                "cancel_job", "delete_job", "wait_job",
                                "backup"},                                   # into the server's data dir, by name
    qstore.Collection: {"config", "store", "snapshot_path", "load", "snapshot", "candidates",  # engine internals
                        "index_mismatch", "summary_mismatch", "rebuild_derived",    # what Database.check runs
                        "sweep"},                                                   # what Database.sweep runs
    StoreCollection: {"config", "sweep"},  # as qstore.Collection's
    qstore_client.Collection: set(),
}

def _methods(protocol: type) -> list[str]:
    return sorted(name for name, value in vars(protocol).items()
                  if inspect.isfunction(value) and not name.startswith("_"))


def _cases() -> list[tuple[type, type, str]]:
    return [(proto, impl, name) for proto, *impls in SURFACES for impl in impls for name in _methods(proto)]


def _params(fn: typing.Any) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def _arg_types(fn: typing.Any) -> dict[str, object]:
    return {k: v for k, v in typing.get_type_hints(fn, localns=HINT_NAMES).items() if k != "return"}


def _result(fn: typing.Any) -> object:
    hint = typing.get_type_hints(fn, localns=HINT_NAMES).get("return", inspect.Signature.empty)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and set(typing.get_args(hint)) <= COLLECTION_CLASSES:
        return CollectionAPI  # a database's collections: LMDB or Qdrant
    return CollectionAPI if hint in COLLECTION_CLASSES else hint


@pytest.mark.parametrize(("protocol", "impl", "name"), _cases(),
                         ids=lambda v: v if isinstance(v, str) else f"{v.__module__}.{v.__qualname__}")
def test_method_matches_protocol(protocol: type, impl: type, name: str) -> None:
    expected, actual = getattr(protocol, name), getattr(impl, name, None)
    assert actual is not None, f"{impl.__qualname__} lacks {name}"
    assert inspect.iscoroutinefunction(actual), f"{impl.__qualname__}.{name} must be async"
    assert _params(actual) == _params(expected), f"{impl.__qualname__}.{name} parameters drifted"
    assert _result(actual) == _result(expected), (
        f"{impl.__qualname__}.{name} returns {_result(actual)}, the API says {_result(expected)}")
    if impl.__module__.startswith("qstore_client"):
        assert _arg_types(actual) == _arg_types(expected), f"{impl.__qualname__}.{name} argument types drifted"


@pytest.mark.parametrize(("protocol", "impl"), [(p, i) for p, *impls in SURFACES for i in impls],
                         ids=lambda v: f"{v.__module__}.{v.__qualname__}")
def test_no_undeclared_public_methods(protocol: type, impl: type) -> None:
    public = {name for name, value in inspect.getmembers(impl)
              if not name.startswith("_") and (callable(value) or isinstance(value, property))}
    public -= {"name", "dim", "metric"}
    extra = public - set(_methods(protocol)) - ONE_SIDED[impl]
    assert not extra, f"{impl.__qualname__} has public {sorted(extra)} outside the API; add them to " \
                      f"qstore_client.api (both sides) or to ONE_SIDED with a reason"


async def test_instances_satisfy_the_protocols(db: qstore.Database) -> None:
    """The data attributes, which only instances carry, and the runtime protocol checks."""
    client = qstore_client.AsyncClient("http://127.0.0.1:9")        # no connection is made
    try:
        remote = qstore_client.Collection(client, {"name": "c", "dim": 2, "metric": "cosine"})
        local = await db.create_collection("c", dim=2)
        for col in (local, remote):
            assert (col.name, col.dim, col.metric) == ("c", 2, "cosine")
            assert isinstance(col, CollectionAPI)
        assert isinstance(db, QStoreAPI) and isinstance(client, QStoreAPI)
    finally:
        await client.close()


def test_the_signature_check_catches_drift() -> None:
    """A deliberate drift (``upsert`` returning Any, a renamed argument) fails the comparison."""

    class Drifted:
        async def upsert(self, ids, vectors, meta=None, coherence_time=None) -> typing.Any: ...

    assert _params(Drifted.upsert) != _params(CollectionAPI.upsert)
    assert _result(Drifted.upsert) != _result(CollectionAPI.upsert)
