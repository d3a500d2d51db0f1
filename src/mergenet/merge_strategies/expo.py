"""ExPO extrapolation: ``θ_b + (1+α)(θ_f − θ_b)`` (arXiv:2404.16792).

With several contributions, θ_f is their weighted average, so ExPO extrapolates the linear
merge away from the base by a factor ``1 + alpha``. Registered with mergekit as
``mergenet_expo`` so recipes export as runnable YAML.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mergenet.merge_strategies._lincomb import lincomb
from mergenet.merge_strategies.space import ParamSpace, f
from mergenet.merge_strategies.strategy import Strategy

MERGEKIT_NAME = "mergenet_expo"
DEFAULT_ALPHA = 0.3


def expo_coefficients(weights: Sequence[float], alpha: float) -> list[float]:
    """Per-delta coefficients ``(1+α)·w_k/Σw`` (Σw ≈ 0 is treated as 1, like mergekit)."""
    total = float(sum(weights))
    if abs(total) < 1e-8:
        total = 1.0
    return [(1.0 + alpha) * w / total for w in weights]


def expo_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    return lincomb(base, 1.0, deltas, expo_coefficients(weights, float(params["alpha"])))


STRATEGY = Strategy(
    name="expo",
    mergekit_method=MERGEKIT_NAME,
    space=ParamSpace((f("alpha", DEFAULT_ALPHA, 0.0, 2.0, "extrapolation beyond the average"),)),
    description="Extrapolate the weighted-average model away from the base by (1+alpha).",
    kernel=expo_kernel,
)
