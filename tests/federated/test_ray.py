"""The Ray executor: participant training as Ray tasks (needs the optional `ray` extra)."""
from __future__ import annotations

import importlib.util

import pytest

from qstore.federated import Coordinator, LocalParticipant, RayExecutor, get_executor
from qstore.training import VQC
from qstore_client import Unavailable

HAVE_RAY = importlib.util.find_spec("ray") is not None


@pytest.mark.skipif(not HAVE_RAY, reason="ray is not installed (pip install 'qstore[ray]')")
async def test_ray_executor_trains_participants(split):
    executor = RayExecutor(num_cpus=1, include_dashboard=False)
    try:
        parts = [LocalParticipant((split.X_train[s], split.y_train[s]), name=f"p{i}", executor=executor)
                 for i, s in enumerate(split.iid)]
        history = await Coordinator(parts, rounds=4, local_epochs=2, seed=0).run(
            VQC(4, 2, 2), validation=(split.X_test, split.y_test))
        assert all(h.status == "aggregated" and len(h.participants) == 4 for h in history)
        assert history[-1].accuracy > 0.85
    finally:
        await executor.close()


@pytest.mark.skipif(HAVE_RAY, reason="checks the message shown when ray is missing")
def test_missing_ray_is_a_clear_error():
    with pytest.raises(Unavailable) as exc:
        get_executor("ray")
    assert "pip install 'qstore[ray]'" in exc.value.message
