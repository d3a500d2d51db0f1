"""Consensus task arithmetic with TALL masks (Wang et al., ICML 2024, "Localizing task
information for improved model merging and compression", arXiv:2405.07813).

Per coordinate, with ``τ_t = w_t·δ_t`` and the multi-task vector ``τ_MTL = Σ_t τ_t``:

1. **TALL mask** of task t: ``m_t = |τ_t| ≥ mask_lambda·|τ_MTL − τ_t|`` — the coordinates
   where task t's own change is at least ``mask_lambda`` times what all the other tasks do
   there, i.e. where task t's information survives in ``τ_MTL``. (The paper picks λ_t per
   task on validation data, from [0.2, 0.6]; data-free, one shared value, default 0.4.)
2. **Consensus**: keep the coordinates that at least ``min_agree`` tasks claim (the paper's
   k; default 2, which drops "selfish" weights only one task uses and "catastrophic" ones
   none uses). ``min_agree`` is capped at T, so one task keeps every coordinate (its mask
   is ``|τ| ≥ 0``) and the merge is task arithmetic.
3. ``base + lambda·(τ_MTL ⊙ consensus)``.

This is not ``consensus`` (the seed paper's Eq. 2, a per-coordinate sign vote with a
weighted-median fallback, which never zeroes a coordinate two tasks push in opposite
directions); the two share only the word. Elementwise, so every tensor shape is handled the
same way, 1-D included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mergenet.merge_strategies._common import lam
from mergenet.merge_strategies._direct import DirectStrategy
from mergenet.merge_strategies._spectral import weighted
from mergenet.merge_strategies.space import ParamSpace, f, i

MERGEKIT_NAME = "mergenet_tall_consensus"
DEFAULT_MASK_LAMBDA = 0.4
DEFAULT_MIN_AGREE = 2


def tall_consensus_delta(
    taus: Sequence[torch.Tensor], mask_lambda: float, min_agree: int
) -> torch.Tensor:
    """``τ_MTL ⊙ [#{t : |τ_t| ≥ λ·|τ_MTL − τ_t|} ≥ min(min_agree, T)]``."""
    mtl = torch.stack(list(taus)).sum(0)
    claims = torch.zeros(mtl.shape, dtype=torch.int32)
    for tau in taus:
        claims += (tau.abs() >= mask_lambda * (mtl - tau).abs()).to(torch.int32)
    keep = claims >= min(min_agree, len(taus))
    return torch.where(keep, mtl, 0.0)


def tall_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    taus = weighted(deltas, weights)
    delta = tall_consensus_delta(taus, float(params["mask_lambda"]), int(params["min_agree"]))
    return base.detach().float() + float(params["lambda"]) * delta


STRATEGY = DirectStrategy(
    name="tall_consensus",
    mergekit_method=MERGEKIT_NAME,
    space=ParamSpace(
        (
            lam(),
            f("mask_lambda", DEFAULT_MASK_LAMBDA, 0.0, 2.0, "TALL mask threshold λ"),
            i("min_agree", DEFAULT_MIN_AGREE, 1, 8, "tasks that must claim a coordinate (k)"),
        )
    ),
    description="Consensus TA: keep τ_MTL where ≥ k tasks' TALL masks agree.",
    method=tall_kernel,
)
