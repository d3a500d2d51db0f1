"""Temporal weighting, token units and the reward quote."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mergenet.rewards.policy import RewardPolicy, quote_reward
from mergenet.rewards.temporal import temporal_weight
from mergenet.rewards.units import UNIT, format_tokens, to_base_units

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def test_temporal_weight_halves_towards_the_floor() -> None:
    assert temporal_weight(T0, T0) == 1.0
    assert temporal_weight(T0 + timedelta(hours=24), T0) == pytest.approx(0.75)
    assert temporal_weight(T0 + timedelta(days=365), T0) == pytest.approx(0.5)
    assert temporal_weight(T0 - timedelta(hours=1), T0) == 1.0  # clock skew: no delay


@given(st.floats(0, 10**7), st.floats(1, 10**7))
def test_earlier_never_earns_less(delay_a: float, extra: float) -> None:
    early = temporal_weight(T0 + timedelta(seconds=delay_a), T0)
    late = temporal_weight(T0 + timedelta(seconds=delay_a + extra), T0)
    assert 0.5 <= late <= early <= 1.0


def test_temporal_weight_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="half_life_s"):
        temporal_weight(T0, T0, half_life_s=0)
    with pytest.raises(ValueError, match="t_floor"):
        temporal_weight(T0, T0, t_floor=1.5)
    with pytest.raises(ValueError, match="aware"):
        temporal_weight(T0.replace(tzinfo=None), T0)


def test_same_score_earlier_submission_earns_more() -> None:
    policy = RewardPolicy(threshold=0.6, base_reward=2.0, beta=1.5)
    early = quote_reward(0.8, submitted_at=T0, parent_published_at=T0, policy=policy)
    late = quote_reward(
        0.8, submitted_at=T0 + timedelta(days=2), parent_published_at=T0, policy=policy
    )
    assert early.amount > late.amount > 0
    assert early.tokens == pytest.approx(2.0 * (math.exp(1.5 * 0.8) - 1))
    below = quote_reward(0.6, submitted_at=T0, parent_published_at=T0, policy=policy)
    assert below.amount == 0


def test_units_are_exact() -> None:
    assert to_base_units(1.5) == 15 * 10**17
    assert to_base_units(0.1) == 10**17  # repr-based: no binary float residue
    assert format_tokens(15 * 10**17) == "1.5" and format_tokens(3 * UNIT) == "3"
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite and >= 0"):
            to_base_units(bad)
