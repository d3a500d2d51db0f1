"""The strategy distribution H(s) of Algorithm 1: multiplicative updates with a floor.

After a candidate built with strategy s is scored, H(s) ← H(s)·exp(β·G) where G is its gain
over the no-change model on the same rows (ΔS = S − S_0 plus γ times the accuracy change, see
:mod:`mergenet.coordinator.acceptance`; positive: the strategy helped), then H is renormalised.
Every weight is kept at or above ``floor`` (a fraction of the total mass), so a
strategy that was unlucky early keeps being sampled now and then and can recover.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def uniform(strategies: Sequence[str]) -> dict[str, float]:
    if not strategies:
        raise ValueError("H(s) needs at least one strategy")
    return {s: 1.0 / len(strategies) for s in strategies}


def with_floor(weights: Mapping[str, float], floor: float) -> dict[str, float]:
    """Renormalise so every weight is >= ``floor`` and the weights sum to 1."""
    n = len(weights)
    if not 0 <= floor * n < 1:
        raise ValueError(f"floor {floor} is too large for {n} strategies (need floor·n < 1)")
    total = sum(weights.values())
    w = {s: v / total for s, v in weights.items()}
    # Pin the strategies under the floor, share the rest in proportion (repeat until stable).
    pinned: set[str] = set()
    while True:
        free = [s for s in w if s not in pinned]
        mass = 1.0 - floor * len(pinned)
        free_total = sum(weights[s] for s in free) or 1.0
        out = {s: floor if s in pinned else mass * weights[s] / free_total for s in w}
        low = {s for s in free if out[s] < floor}
        if not low:
            return out
        pinned |= low


def update(
    weights: Mapping[str, float], strategy: str, gain: float, *, beta: float, floor: float
) -> dict[str, float]:
    """One multiplicative update of H for ``strategy``'s measured gain G."""
    if strategy not in weights:
        raise KeyError(f"{strategy!r} is not in H(s)")
    step = max(-50.0, min(50.0, beta * gain))
    new = dict(weights)
    new[strategy] = weights[strategy] * math.exp(step)
    return with_floor(new, floor)


def sample(weights: Mapping[str, float], rng: np.random.Generator) -> str:
    names = sorted(weights)
    p = np.array([weights[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def distance_from_uniform(weights: Mapping[str, float]) -> float:
    """Total-variation distance from uniform (0 = still uniform)."""
    u = 1.0 / len(weights)
    return 0.5 * sum(abs(v - u) for v in weights.values())
