"""LiNeS (Wang et al., ICLR 2025, "Post-training layer scaling prevents forgetting and
enhances model merging", arXiv:2410.17146), and layer-wise task arithmetic.

**LiNeS** is its own strategy here (``lines``), task arithmetic with depth-dependent scale:
the merged task vector ``τ = Σ_t w_t·δ_t`` (divided by ``Σ_t w_t`` when ``normalize``, the
default: eight correlated deltas summed at weight 1 wreck the world's model, see the README's
merge-quality table) is scaled per tensor by ``alpha + beta·depth``, depth = ``l/(L−1)``
for block l of L (``_depth``; embeddings at 0, final norm and ``lm_head`` at 1). Shallow
layers hold general features that fine-tuning should barely move, so they stay near the base
(``alpha``), and deep, task-specific layers keep more of the update (``alpha + beta``): the
paper's remedy for forgetting, and for the interference of summed task vectors. Defaults
``alpha`` 0.5, ``beta`` 1.0 are ours (the paper tunes both on validation data): the mean
task vector at half scale at the input, 1.5× at the output.

**Layer-wise task arithmetic** (``task_arithmetic_layerwise``) lets the loop search one
scale per block group, as evolutionary model merging (Akiba et al. 2024) searches per-layer
weights: ``base + lambda_g·Σ_t w_t·δ_t`` with g the depth quarter of the tensor
(``min(3, ⌊4·depth⌋)``: on the world's 4-block Llama, group g is block g, with the embedding
in group 0 and the final norm and ``lm_head`` in group 3). All four at 1 is task arithmetic.

Neither has a mergekit method of the same meaning taking scalar parameters (mergekit spells
this as a per-layer ``lambda`` gradient list), so their ``mergekit_method`` names are
mergenet's own and are not registered with mergekit; and neither has a name-free kernel, so
neither is a loop default: select them with ``LoopSettings.strategies``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mergenet.merge_strategies._common import normalize
from mergenet.merge_strategies._depth import DepthStrategy
from mergenet.merge_strategies._spectral import weighted
from mergenet.merge_strategies.space import ParamSpace, f

GROUPS = 4


def _task_vector(
    deltas: Sequence[torch.Tensor], weights: Sequence[float], norm: bool
) -> torch.Tensor:
    tau = torch.stack(weighted(deltas, weights)).sum(0)
    total = float(sum(weights))
    if norm:
        if total == 0:
            raise ValueError("normalize=true needs weights that do not sum to 0")
        tau = tau / total
    return tau


def lines_scale(alpha: float, beta: float, depth: float) -> float:
    """LiNeS' scale at a depth in [0, 1]: ``alpha`` at the input end, ``alpha+beta`` at the top."""
    return alpha + beta * depth


def group_of(depth: float) -> int:
    return min(GROUPS - 1, int(depth * GROUPS))


@dataclass(frozen=True)
class LinesStrategy(DepthStrategy):
    def merge_at_depth(
        self,
        base: torch.Tensor,
        deltas: Sequence[torch.Tensor],
        weights: Sequence[float],
        params: Mapping[str, Any],
        depth: float,
    ) -> torch.Tensor:
        tau = _task_vector(deltas, weights, bool(params["normalize"]))
        scale = lines_scale(float(params["alpha"]), float(params["beta"]), depth)
        return base.detach().float() + scale * tau


@dataclass(frozen=True)
class LayerwiseTaskArithmetic(DepthStrategy):
    def merge_at_depth(
        self,
        base: torch.Tensor,
        deltas: Sequence[torch.Tensor],
        weights: Sequence[float],
        params: Mapping[str, Any],
        depth: float,
    ) -> torch.Tensor:
        tau = _task_vector(deltas, weights, bool(params["normalize"]))
        return base.detach().float() + float(params[f"lambda_{group_of(depth)}"]) * tau


LINES = LinesStrategy(
    name="lines",
    mergekit_method="mergenet_lines",
    space=ParamSpace(
        (
            f("alpha", 0.5, 0.0, 2.0, "scale of the merged task vector at the input end"),
            f("beta", 1.0, 0.0, 2.0, "extra scale added linearly up to the last block"),
            normalize(True),
        )
    ),
    description="LiNeS: task arithmetic scaled alpha + beta·depth per layer.",
)

LAYERWISE = LayerwiseTaskArithmetic(
    name="task_arithmetic_layerwise",
    mergekit_method="mergenet_task_arithmetic_layerwise",
    space=ParamSpace(
        (
            *(
                f(f"lambda_{g}", 1.0, 0.0, 2.0, f"scale of the task vector in depth quarter {g}")
                for g in range(GROUPS)
            ),
            normalize(False),
        )
    ),
    description="Task arithmetic with one searched scale per block group (depth quarter).",
)
