"""How much a contribution earns: the seed's formula with mergenet's temporal weight, and the
pay for a confirmed marginal improvement the coordinator uses (:func:`quote_marginal`).

The coordinator no longer pays ``quote_reward`` per scored upload (a flat ~0.8 tokens for any S
just above the no-change score paid Sybil copies and junk); it stays for tools that quote S.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from mergenet.evaluator.score import reward_amount
from mergenet.rewards.temporal import DEFAULT_HALF_LIFE_S, DEFAULT_T_FLOOR, temporal_weight
from mergenet.rewards.units import to_base_units


@dataclass(frozen=True)
class RewardPolicy:
    """Parameters of R = R_b·(e^(β·t·S) − 1) if S > threshold else 0 (R in tokens).

    ``threshold`` has no default on purpose: it must sit above the no-change score of the
    current evaluation setup (``mergenet.evaluator.score.no_change_score``), which depends on
    the score weights, so the coordinator states it.
    """

    threshold: float
    base_reward: float = 1.0
    beta: float = 1.0
    half_life_s: float = DEFAULT_HALF_LIFE_S
    t_floor: float = DEFAULT_T_FLOOR


@dataclass(frozen=True)
class RewardQuote:
    t: float
    tokens: float
    amount: int
    """Base units (18 decimals), what the ledger accrues."""


def quote_reward(
    score: float,
    *,
    submitted_at: datetime,
    parent_published_at: datetime,
    policy: RewardPolicy,
) -> RewardQuote:
    """The reward for a contribution scored ``score`` (S ∈ [0, 1])."""

    t = temporal_weight(
        submitted_at, parent_published_at, half_life_s=policy.half_life_s, t_floor=policy.t_floor
    )
    tokens = reward_amount(
        score, base_reward=policy.base_reward, beta=policy.beta, t=t, threshold=policy.threshold
    )
    return RewardQuote(t=t, tokens=tokens, amount=to_base_units(tokens))


@dataclass(frozen=True)
class MarginalPolicy:
    """Pay for a confirmed marginal improvement: R = per_gain × credited × t (R in tokens).

    ``credited`` = max(0, G(V | P) − G(V∖c | P) − noise margin), measured by the coordinator's
    leave-one-out attribution (``mergenet.coordinator.attribution``); t is the temporal weight.
    At the default 100 tokens per unit of G, one more right answer in 160 on a merge that
    keeps it (G +0.0125) is worth about 1.25 tokens before t.
    """

    per_gain: float = 100.0
    half_life_s: float = DEFAULT_HALF_LIFE_S
    t_floor: float = DEFAULT_T_FLOOR


def quote_marginal(
    credited: float,
    *,
    submitted_at: datetime,
    parent_published_at: datetime,
    policy: MarginalPolicy,
) -> RewardQuote:
    """The reward for ``credited`` units of confirmed marginal gain (negative or NaN: 0).

    ``parent_published_at`` is the publication time of the contribution's declared parent,
    not of the version it was scored on (:mod:`mergenet.rewards.temporal`)."""
    t = temporal_weight(
        submitted_at, parent_published_at, half_life_s=policy.half_life_s, t_floor=policy.t_floor
    )
    gain = credited if math.isfinite(credited) and credited > 0 else 0.0
    tokens = policy.per_gain * gain * t
    return RewardQuote(t=t, tokens=tokens, amount=to_base_units(tokens))
