"""How much a scored contribution earns: the seed's formula with mergenet's temporal weight."""

from __future__ import annotations

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
