"""Circular mean and wrapped-delta averaging across the ±π seam (scipy.stats.circmean as oracle)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import circmean

from qstore.federated import CircularMean, circular_mean, wrap, wrapped_delta, wrapped_delta_mean


def test_wrap_range_and_seam():
    a = np.array([0.0, np.pi, -np.pi, 3 * np.pi, -3 * np.pi, 2 * np.pi, 7.0, -7.0])
    w = wrap(a)
    assert np.all(w > -np.pi) and np.all(w <= np.pi)
    assert w[1] == pytest.approx(np.pi) and w[2] == pytest.approx(np.pi)  # −π maps to +π
    np.testing.assert_allclose(np.cos(w), np.cos(a), atol=1e-12)
    np.testing.assert_allclose(np.sin(w), np.sin(a), atol=1e-12)


def test_naive_mean_is_wrong_across_the_seam():
    angles = np.array([[np.pi - 0.1], [-np.pi + 0.1]])
    assert abs(angles.mean()) < 1e-12                       # the naive answer: the opposite side
    assert abs(wrap(circular_mean(angles) - np.pi)[0]) < 1e-12  # both sit 0.1 from π
    ref = np.array([np.pi - 0.05])
    assert abs(wrap(wrapped_delta_mean(angles, ref) - np.pi)[0]) < 1e-12


def test_wrapped_delta_is_the_short_way_round():
    np.testing.assert_allclose(wrapped_delta(np.array([-np.pi + 0.1]), np.array([np.pi - 0.1])), [0.2])
    np.testing.assert_allclose(wrapped_delta(np.array([np.pi - 0.1]), np.array([-np.pi + 0.1])), [-0.2])


def test_circular_mean_matches_scipy_on_random_clusters():
    rng = np.random.default_rng(7)
    centres = rng.uniform(-np.pi, np.pi, 50)
    centres[:10] = np.pi - 0.01                              # force clusters straddling the seam
    angles = wrap(centres[None, :] + rng.normal(0, 0.4, (9, 50)))
    ours = circular_mean(angles)
    oracle = wrap(circmean(angles, high=np.pi, low=-np.pi, axis=0))
    np.testing.assert_allclose(wrap(ours - oracle), 0.0, atol=1e-9)


def test_weighted_circular_mean_equals_repetition():
    angles = np.array([[np.pi - 0.2], [-np.pi + 0.1], [3.0]])
    weighted = circular_mean(angles, np.array([2.0, 1.0, 3.0]))
    repeated = circular_mean(np.repeat(angles, [2, 1, 3], axis=0))
    np.testing.assert_allclose(weighted, repeated, atol=1e-12)


def test_wrapped_delta_mean_agrees_with_circular_mean_for_concentrated_angles():
    rng = np.random.default_rng(3)
    ref = wrap(rng.uniform(-np.pi, np.pi, 20) + np.pi)
    angles = wrap(ref[None, :] + rng.normal(0, 0.1, (5, 20)))
    np.testing.assert_allclose(wrap(wrapped_delta_mean(angles, ref) - circular_mean(angles)), 0.0, atol=1e-3)


def test_circular_strategy_steps_across_the_seam():
    """Global angle π − 0.05; participants moved to π − 0.1 and −π + 0.1: the step lands on π."""
    global_params = np.array([np.pi - 0.05, 1.0])
    deltas = np.array([[-0.05, 0.2], [0.15 - 2 * np.pi, 0.4]])  # raw differences, one unwrapped
    step = CircularMean().aggregate(global_params, deltas, np.array([1, 1]), n_angles=1)
    assert abs(wrap(global_params[:1] + step[:1] - np.pi)[0]) < 1e-12
    assert step[1] == pytest.approx(0.3)                         # classical weight: plain mean
