"""Compressed updates: unbiased stochastic quantisation, exact bit packing, error feedback, and rounds
that train as well as float64 ones while sending a fraction of the bytes."""
from __future__ import annotations

import math

import numpy as np
import pytest

from qstore.federated import Coordinator, LocalParticipant, Update
from qstore.federated.compression import Compression, ErrorFeedback, compress, decompress, wire_bytes
from qstore.training import VQC
from qstore_client import InvalidArgument


def test_quantisation_is_unbiased_and_within_one_step():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.3, 300)
    draws = np.stack([compress(x, 4, 64, rng)[1] for _ in range(400)])
    step = (x.max() - x.min()) / 15  # the widest chunk's step is at most this
    assert np.abs(draws - x).max() <= step * (1 + 1e-6)
    # the mean of 400 draws sits within 4 standard errors of x (the variance is at most step²/4)
    assert np.abs(draws.mean(axis=0) - x).max() < 4 * (step / 2) / math.sqrt(400)


@pytest.mark.parametrize("bits", [4, 5, 8, 11, 16])
def test_wire_form_decodes_to_what_the_sender_committed_to(bits):
    rng = np.random.default_rng(bits)
    x = rng.normal(0, 1, 1000)
    wire, decoded = compress(x, bits, 256, rng)
    np.testing.assert_array_equal(decompress(wire, 1000), decoded)
    assert wire_bytes(wire) == math.ceil(1000 * bits / 8) + 8 * 4
    assert np.abs(decoded - x).max() <= (x.max() - x.min()) / ((1 << bits) - 1) * (1 + 1e-6)


def test_error_feedback_keeps_the_running_sum_on_track():
    rng = np.random.default_rng(1)
    deltas = rng.normal(0, 0.1, (40, 200))
    sums = {}
    for feedback in (True, False):
        memory = ErrorFeedback()
        config = Compression(bits=4, error_feedback=feedback, chunk=50)
        sent = [memory.apply("run", d, config, np.random.default_rng(i))[1] for i, d in enumerate(deltas)]
        sums[feedback] = np.abs(np.sum(sent, axis=0) - deltas.sum(axis=0)).max()
    step = (deltas.max() - deltas.min()) / 15
    assert sums[True] <= 1.5 * step      # only the last round's residual is outstanding
    assert sums[False] > 2 * sums[True]  # without it, rounding errors random-walk


def test_bad_compression_is_refused():
    for bad in ({"bits": 3}, {"bits": 17}, {"bits": "8"}, {"chunk": 0}, {"error_feedback": 1}, {"level": 2}, 8):
        with pytest.raises(InvalidArgument):
            Compression.of(bad)
    wire, _ = compress(np.ones(10), 8, 4, np.random.default_rng(0))
    for broken in ({**wire, "codes": wire["codes"][:-1]}, {**wire, "length": 11}, {**wire, "lo": wire["lo"][:2]},
                   {**wire, "hi": wire["lo"] - 1}, {k: v for k, v in wire.items() if k != "bits"}):
        with pytest.raises(InvalidArgument):
            Update.from_wire({"round": 1, "n": 3, "compressed": broken}, 10, 1)
    with pytest.raises(InvalidArgument):
        Update.from_wire({"round": 1, "n": 3, "compressed": wire, "delta": np.ones(10)}, 10, 1)


async def test_8_bit_rounds_train_like_float64_ones_on_a_fraction_of_the_bytes(split):
    results = {}
    for bits in (None, 8, 4):
        parts = [LocalParticipant((split.X_train[s], split.y_train[s]), name=f"p{i}") for i, s in enumerate(split.iid)]
        coord = Coordinator(parts, rounds=8, local_epochs=2, seed=0,
                            compression=None if bits is None else {"bits": bits, "error_feedback": True})
        model = VQC(4, 2, 2)
        history = await coord.run(model, validation=(split.X_test, split.y_test))
        results[bits] = (history[-1].accuracy, history[-1].bytes_sent, history[-1].compression_ratio)
    print("\n" + "\n".join(f"bits={b}: accuracy {a:.4f}, bytes/participant {sorted(set(s.values()))}, "
                           f"ratio to float64 {r:.2f}" for b, (a, s, r) in results.items()))
    n_params = VQC(4, 2, 2, n_features=4).n_params
    assert set(results[None][1].values()) == {8 * n_params} and results[None][2] == 1.0
    assert set(results[8][1].values()) == {n_params + 8}     # one byte per value, one chunk's two float32 bounds
    assert results[8][2] > 5
    assert abs(results[8][0] - results[None][0]) <= 0.01
