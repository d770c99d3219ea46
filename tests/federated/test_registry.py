"""The participant registry (persisted in the coordinator's database) and the circuit breaker per participant."""
from __future__ import annotations

import pytest

import qstore
from qstore.federated import Coordinator
from qstore.federated.breaker import Breaker, BreakerPolicy
from qstore.training import VQC
from qstore_client import InvalidArgument, NotFound
from tests.servers import ServerProcess


async def test_registry_persists_and_validates(tmp_path):
    async with await qstore.Database.open(str(tmp_path / "coord")) as db:
        await db.register_participant("b", "http://127.0.0.1:9/", tags=["gpu", "eu"])
        await db.register_participant("a", "https://node-a:8470")
        await db.update_participant("a", {"status": "ok", "failures": 0, "latency_s": 0.5})
        await db.register_participant("a", "https://node-a2:8470", tags=["eu"])  # re-addressed, health kept
        for bad in [("bad name!", "http://x"), ("c", "ftp://x"), ("c", "http://x", "gpu")]:
            with pytest.raises(InvalidArgument):
                await db.register_participant(*bad)
        with pytest.raises(InvalidArgument):
            await db.update_participant("a", {"rows": 1})
        with pytest.raises(NotFound):
            await db.remove_participant("nobody")
    async with await qstore.Database.open(str(tmp_path / "coord")) as db:
        listed = await db.list_participants()
        assert [p["name"] for p in listed] == ["a", "b"]
        a, b = listed
        assert a["url"] == "https://node-a2:8470" and a["tags"] == ["eu"] and a["latency_s"] == 0.5
        assert b["url"] == "http://127.0.0.1:9" and b["tags"] == ["eu", "gpu"] and b["status"] == "unknown"
        assert b["breaker"]["state"] == "closed" and b["failures"] == 0 and b["last_seen"] is None
        await db.remove_participant("b")
        assert [p["name"] for p in await db.list_participants()] == ["a"]
        with pytest.raises(InvalidArgument, match="needs db"):
            Coordinator("registry")
    async with await qstore.Database.open(str(tmp_path / "empty")) as db:
        with pytest.raises(qstore.errors.Unavailable, match="registry is empty"):
            await Coordinator("registry", db=db).run(VQC(4, 2, 2))


def test_breaker_opens_after_k_failures_then_one_probe_decides():
    policy = BreakerPolicy(failures=2, backoff_s=10.0)
    b = Breaker()
    b.failure(policy, 100.0)
    assert b.state == "closed" and b.allow(policy, 100.0)
    b.failure(policy, 101.0)
    assert b.state == "open" and not b.allow(policy, 105.0) and b.retry_in(policy, 105.0) == 6.0
    assert b.allow(policy, 111.0) and b.state == "half_open"          # the probe
    b.failure(policy, 112.0)                                          # failed probe: open again, new backoff
    assert b.state == "open" and not b.allow(policy, 121.0) and b.allow(policy, 122.0)
    b.success()
    assert (b.state, b.failures) == ("closed", 0)
    assert Breaker.from_dict(b.to_dict()) == b and Breaker.from_dict({"state": "melted"}) == Breaker()
    for bad in ({"failures": 0}, {"backoff_s": -1}, {"failures": True}, {"k": 3}):
        with pytest.raises(InvalidArgument):
            BreakerPolicy.of(bad)


async def test_killed_node_opens_its_breaker_and_a_probe_closes_it_when_it_returns(nodes, split, spare, tmp_path):
    async with await qstore.Database.open(str(tmp_path / "coord")) as db:
        for name, url in (("a", nodes[0].url), ("b", nodes[1].url), ("spare", spare.url)):
            await db.register_participant(name, url)

        def kill_at_round_2(event: str, info: dict) -> None:
            if event == "round_start" and info["round"] == 2:
                spare.kill()

        first = Coordinator("registry", db=db, dataset="iid", rounds=4, deadline_s=30, seed=0,
                            breaker={"failures": 2, "backoff_s": 3600}, progress=kill_at_round_2)
        history = await first.run(VQC(4, 2, 2), validation=(split.X_test, split.y_test))
        assert "spare" in history[0].participants
        assert all(h.excluded["spare"].startswith("unavailable") for h in history[1:3])
        # open: round 4 did not ask it at all, so nothing could make it wait
        assert history[3].excluded["spare"].startswith("breaker open: skipped after 2 consecutive failure(s)")
        assert history[3].status == "aggregated" and sorted(history[3].participants) == ["a", "b"]
        state = {p["name"]: p for p in await db.list_participants()}
        assert state["spare"]["breaker"]["state"] == "open" and state["spare"]["status"] == "failing"
        assert state["a"]["status"] == "ok" and state["a"]["latency_s"] > 0 and state["a"]["last_seen"] > 0

        back = ServerProcess(spare.data_dir, port=spare.port)  # same data directory, same address
        try:
            # a new coordinator reads the open breaker from the registry; its backoff is over at once
            second = Coordinator("registry", db=db, dataset="iid", rounds=1, deadline_s=30, seed=1,
                                 breaker={"failures": 2, "backoff_s": 0})
            record = (await second.run(VQC(4, 2, 2), validation=(split.X_test, split.y_test)))[0]
        finally:
            back.stop()
        assert "spare" in record.participants                      # the half-open probe succeeded
        spare_state = next(p for p in await db.list_participants() if p["name"] == "spare")
        assert spare_state["breaker"] == {"state": "closed", "failures": 0, "opened_at": None}
        assert spare_state["status"] == "ok" and spare_state["failures"] == 0
