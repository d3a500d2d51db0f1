"""H(s): multiplicative updates move mass toward strategies that gain, and the floor holds."""

from __future__ import annotations

import numpy as np
import pytest

from mergenet.coordinator import heuristic


def test_gain_moves_mass_and_floor_keeps_losers_alive() -> None:
    h = heuristic.uniform(["a", "b", "c"])
    for _ in range(50):
        h = heuristic.update(h, "a", 0.1, beta=20, floor=0.05)
        h = heuristic.update(h, "c", -0.1, beta=20, floor=0.05)
    assert sum(h.values()) == pytest.approx(1.0)
    assert h["a"] > 0.85
    assert h["c"] == pytest.approx(0.05)
    assert min(h.values()) >= 0.05 - 1e-12
    assert heuristic.distance_from_uniform(h) > 0.4


def test_zero_gain_changes_nothing_and_sampling_follows_weights() -> None:
    h = heuristic.uniform(["a", "b"])
    assert heuristic.update(h, "a", 0.0, beta=20, floor=0.05) == pytest.approx(h)
    rng = np.random.default_rng(0)
    draws = [heuristic.sample({"a": 0.9, "b": 0.1}, rng) for _ in range(2000)]
    assert 0.86 < draws.count("a") / 2000 < 0.94


def test_floor_too_large_is_an_error() -> None:
    with pytest.raises(ValueError, match="floor"):
        heuristic.with_floor({"a": 1, "b": 1}, 0.5)
