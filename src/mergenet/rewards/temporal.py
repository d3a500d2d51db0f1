"""The temporal weighting t in R = R_b·(e^(β·t·S) − 1): earlier submissions earn more.

Choice (documented in the README): t decays with how long after its parent core version was
published a contribution arrives,

    t = t_floor + (1 − t_floor) · 2^(−Δ / half_life),   Δ = submitted_at − parent_published_at,

so t = 1 for a contribution made the moment a new core version appears, halving its distance
to ``t_floor`` every ``half_life``. Two contributions of the same quality S against the same
parent are therefore paid in the order they arrived, like Bittensor's ε-advantage for the
first miner: copying or re-submitting someone's improvement later earns strictly less, and the
first to improve a fresh core version is paid most. ``t_floor`` > 0 keeps late but genuine
work worth something, and t never exceeds 1, so the formula's upper bound stays R_b(e^β − 1).
It needs only two timestamps the coordinator already stores.

The parent is the version the contribution DECLARES (and signs): a delta may be made on any
earlier version and is applied to the current one as a task vector
(``mergenet.coordinator.parents``), and Δ still counts from the declared parent's
publication, never from the version it happened to be scored on (that gave a delta on version 1
uploaded a day late t = 1 when version 3 had appeared just before). A contributor may declare a
newer parent than the one it trained on (nothing in the weights proves which), but the best t it
can get that way is the one of a contributor who pulled the current version at once and
uploaded at the same moment: the declared parent must already be a known version at upload.
"""

from __future__ import annotations

import math
from datetime import datetime

DEFAULT_HALF_LIFE_S = 24 * 3600.0
DEFAULT_T_FLOOR = 0.5


def temporal_weight(
    submitted_at: datetime,
    parent_published_at: datetime,
    *,
    half_life_s: float = DEFAULT_HALF_LIFE_S,
    t_floor: float = DEFAULT_T_FLOOR,
) -> float:
    """t ∈ [t_floor, 1], falling with the delay between the parent version and the submission.

    A submission time before the parent's publication (clock skew) counts as no delay.
    """
    if not (math.isfinite(half_life_s) and half_life_s > 0):
        raise ValueError(f"half_life_s must be a positive number of seconds, got {half_life_s!r}")
    if not 0.0 <= t_floor <= 1.0:
        raise ValueError(f"t_floor must lie in [0, 1], got {t_floor!r}")
    if (submitted_at.tzinfo is None) != (parent_published_at.tzinfo is None):
        raise ValueError("submitted_at and parent_published_at must both be aware or both naive")
    delay = max(0.0, (submitted_at - parent_published_at).total_seconds())
    return t_floor + (1.0 - t_floor) * 2.0 ** (-delay / half_life_s)
