"""PCB merging: parameter competition balancing (Du et al., NeurIPS 2024, arXiv:2410.02396).

Per tensor, with ``τ_i = w_i·δ_i`` for N tasks flattened to D coordinates and ``Norm`` a
min-max normalisation over the tensor's coordinates (to [0, 1]):

1. **Intra-balancing** (how much a coordinate matters to its own task):
   ``β_intra,i = Softmax(N·Norm(τ_i ⊙ τ_i))`` — the factor N sharpens the softmax as tasks
   are added, so with more competition only a task's largest changes keep weight.
2. **Inter-balancing** (how much a task's change agrees with the others'):
   ``β_inter,i = Σ_j Softmax(Norm(τ_i ⊙ τ_j))``.
3. ``β_i = β_intra,i ⊙ β_inter,i``; the ``drop`` share of each task's coordinates with the
   lowest β_i get β = 0 — exactly ``round(drop·D)`` of them (ties broken by position, so the
   count is exact).
4. **Rescale and merge**: ``τ = Σ_i β_i ⊙ τ_i / Σ_i β_i`` (0 where no task is kept), and
   ``base + lambda·τ``.

Softmaxes run over the tensor's coordinates and are multiplied by D (mean 1); the scale
cancels in step 4's ratio and keeps float32 away from underflow on large tensors. The paper
balances over the whole flattened model; here every tensor is balanced on its own (the
per-tensor kernel is how mergenet streams a merge), which also keeps an embedding's scale
from swamping a norm gain's. A coordinate where ``τ_i`` is exactly 0 (a tensor the delta
does not carry) abstains rather than pulling the mean to 0. ``drop`` defaults to 0.1 (the
paper's search range is 0.05–0.2) and ``lambda`` to 1.0 (the result is a weighted mean,
not a sum).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mergenet.merge_strategies._common import lam
from mergenet.merge_strategies._direct import DirectStrategy
from mergenet.merge_strategies._spectral import weighted
from mergenet.merge_strategies.space import ParamSpace, f

MERGEKIT_NAME = "mergenet_pcb"
DEFAULT_DROP = 0.1


def _norm(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if float(hi) > float(lo) else torch.zeros_like(x)


def _softmax(x: torch.Tensor) -> torch.Tensor:
    return torch.softmax(x, 0) * x.numel()


def balance(taus: Sequence[torch.Tensor]) -> torch.Tensor:
    """The PCB matrix β (N, D) before dropping: intra ⊙ inter balancing."""
    n = len(taus)
    out = []
    for ti in taus:
        intra = _softmax(n * _norm(ti * ti))
        inter = sum((_softmax(_norm(ti * tj)) for tj in taus), torch.zeros_like(ti))
        out.append(intra * inter)
    return torch.stack(out)


def pcb_delta(taus: Sequence[torch.Tensor], drop: float) -> torch.Tensor:
    """``Σ β̂_i τ_i / Σ β̂_i`` over flat task vectors, β̂ the balance with the lowest dropped."""
    t = torch.stack(list(taus))
    beta = balance(taus)
    d = t.shape[1]
    cut = min(d, round(drop * d))
    if cut > 0:
        low = torch.topk(beta, cut, dim=1, largest=False).indices
        beta.scatter_(1, low, 0.0)
    beta = torch.where(t == 0, 0.0, beta)
    total = beta.sum(0)
    return torch.where(total > 0, (beta * t).sum(0) / torch.where(total > 0, total, 1.0), 0.0)


def pcb_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    taus = [t.reshape(-1) for t in weighted(deltas, weights)]
    delta = pcb_delta(taus, float(params["drop"])).reshape(base.shape)
    return base.detach().float() + float(params["lambda"]) * delta


STRATEGY = DirectStrategy(
    name="pcb",
    mergekit_method=MERGEKIT_NAME,
    space=ParamSpace(
        (
            lam(),
            f(
                "drop",
                DEFAULT_DROP,
                0.0,
                0.9,
                "share of each task's lowest-β entries dropped",
            ),
        )
    ),
    description="PCB: intra/inter-task balancing, drop the lowest, balanced mean.",
    method=pcb_kernel,
)
