"""Error mitigation where it changes the result: a regression trained on the exact simulator, then run on a
noisy device with shots (benchmarks/README.md, "Training under noise", arm R; the protocol and its
functions are the benchmark's, ``benchmarks/noise.py``)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "noise.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("noise_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


@pytest.mark.slow
async def test_mitigation_chosen_on_validation_raises_mean_test_r2_under_nisq_noise() -> None:
    """diabetes, VQCRegressor, NISQ 2% noise, 1,000 shots, seeds 0-4: the mitigation picked on validation R²
    gives a higher mean test R² than the raw noisy device, and closes at least half the gap to noiseless."""
    bench = _benchmark()
    trials = [await bench.deployment_trial("diabetes", seed, bench.NOISE_LEVELS["NISQ 2%"]) for seed in range(5)]
    noiseless, raw, chosen = (np.array([t[k][1] for t in trials]) for k in ("exact", "raw", "chosen"))
    for seed in range(5):
        print(f"seed {seed}: test R² noiseless {noiseless[seed]:.3f}, raw {raw[seed]:.3f}, "
              f"mitigated {chosen[seed]:.3f}")
    assert chosen.mean() > raw.mean(), (chosen.mean(), raw.mean())
    assert chosen.mean() - raw.mean() >= 0.5 * (noiseless.mean() - raw.mean())


@pytest.mark.slow
async def test_deployment_trial_picks_the_mitigation_best_on_validation() -> None:
    """One small run of the protocol's machinery: every candidate is scored, and "chosen" is the candidate
    with the highest validation score (the first of ties), never picked on test."""
    bench = _benchmark()
    bench.DIABETES = ({"type": "vqc_regressor", "n_qubits": 4, "layers": 1}, 0.1, 64, 2)
    trial = await bench.deployment_trial("diabetes", 0, bench.NOISE_LEVELS["NISQ 2%"], shots=200)
    assert set(trial) == {"exact", "raw", "chosen", *bench.CANDIDATES}
    best = max(trial[name][0] for name in bench.CANDIDATES)
    first = next(name for name in bench.CANDIDATES if trial[name][0] == best)
    assert trial["chosen"] == trial[first]
    assert trial["raw"] != trial["readout"]             # the mitigation option reached the backend
