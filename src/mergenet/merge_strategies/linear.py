"""Linear / model soup: a weighted average of the contributed models (mergekit ``linear``).

Contribution k is the model ``base + δ_k``, so ``Σ w_k (base + δ_k) / Σ w_k`` is
``base + Σ (w_k / W) δ_k`` — computed directly in delta space with one chunked pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mergenet.merge_strategies._lincomb import lincomb
from mergenet.merge_strategies.space import ParamSpace, b
from mergenet.merge_strategies.strategy import Strategy


def linear_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    total = float(sum(weights))
    if params.get("normalize", True):
        if total == 0:
            raise ValueError("linear merge with normalize=true needs weights that do not sum to 0")
        return lincomb(base, 1.0, deltas, [w / total for w in weights])
    return lincomb(base, total, deltas, list(weights))


STRATEGY = Strategy(
    name="linear",
    mergekit_method="linear",
    space=ParamSpace((b("normalize", True, "divide by the summed weights"),)),
    description="Weighted average of the contributed models (model soup).",
    kernel=linear_kernel,
    base_input=False,
)
