"""The seed paper's Eq. 2 consensus resolution, per coordinate, over the candidates' deltas.

For each coordinate i, with δ_k the k-th candidate's change from the base and w_k ≥ 0 its
weight:

1. **No change.** A candidate with ``|δ_k| < epsilon`` (or δ_k = 0) abstains. If all abstain,
   the base value is kept.
2. **Consensus.** Among the active candidates, if the weight on one sign reaches a fraction
   ``gamma`` of the active weight, the result is that sign times the weighted mean magnitude
   of the candidates with that sign: ``sign · Σ w_k|δ_k| / Σ w_k`` over the agreeing ones
   (ties between the two signs go to +).
3. **Robust step otherwise.** When the signs do not reach consensus, take the *weighted
   median* of the active candidates' δ_k (the lower weighted median: the smallest δ with
   cumulative weight ≥ half the active weight). A median is the one-step minimiser of
   Σ w_k |δ − δ_k|, so a single outlying candidate cannot drag the coordinate, and with
   split signs it lands on a small value near the disagreement's centre.

The result is ``base + lambda · δ``. Registered with mergekit as ``mergenet_consensus``
(reference implementation in ``mergekit_plugin``); this module holds the fused kernel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mergenet.merge_strategies._alloc import empty_f32
from mergenet.merge_strategies._common import lam
from mergenet.merge_strategies.space import ParamSpace, f
from mergenet.merge_strategies.strategy import Strategy

MERGEKIT_NAME = "mergenet_consensus"
DEFAULT_EPSILON = 1e-6
DEFAULT_GAMMA = 0.6
CHUNK = 1 << 15


def resolve(D: torch.Tensor, w: torch.Tensor, epsilon: float, gamma: float) -> torch.Tensor:
    """Eq. 2 over stacked deltas ``D`` (k, n) with weights ``w`` (k,): the merged delta (n,)."""
    active = (D.abs() >= epsilon) & (D != 0)
    Wm = torch.where(active, w[:, None], 0.0)
    pos = D > 0
    Wp = torch.where(pos, Wm, 0.0).sum(0)
    Wn = torch.where(pos, 0.0, Wm).sum(0)
    Wa = Wm.sum(0)
    WA = Wm * D.abs()
    Sp = torch.where(pos, WA, 0.0).sum(0)
    Sn = torch.where(pos, 0.0, WA).sum(0)
    plus = Wp >= Wn
    Wmax = torch.where(plus, Wp, Wn)
    has = Wa > 0
    agree = has & (Wmax >= gamma * Wa)
    mag = torch.where(plus, Sp, Sn) / torch.where(Wmax > 0, Wmax, 1.0)
    consensus = torch.where(plus, mag, -mag)
    srt, idx = D.sort(dim=0, stable=True)
    cum = Wm.gather(0, idx).cumsum(0)
    pick = (cum < 0.5 * Wa).sum(0, keepdim=True).clamp_(max=D.shape[0] - 1)
    median = srt.gather(0, pick).squeeze(0)
    return torch.where(agree, consensus, torch.where(has, median, 0.0))


def consensus_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    if any(w < 0 for w in weights):
        raise ValueError("consensus weights must be >= 0 (they are votes)")
    shape = base.shape
    b = base.detach().reshape(-1).float()
    ds = [d.detach().reshape(-1).float() for d in deltas]
    w = torch.tensor([float(x) for x in weights], dtype=torch.float32)
    eps, gamma, scale = float(params["epsilon"]), float(params["gamma"]), float(params["lambda"])
    n = b.numel()
    out = empty_f32(n)
    for s in range(0, n, CHUNK):
        e = min(n, s + CHUNK)
        delta = resolve(torch.stack([d[s:e] for d in ds]), w, eps, gamma)
        torch.add(b[s:e], delta, alpha=scale, out=out[s:e])
    return out.reshape(shape)


STRATEGY = Strategy(
    name="consensus",
    mergekit_method=MERGEKIT_NAME,
    space=ParamSpace(
        (
            f("epsilon", DEFAULT_EPSILON, 0.0, 1e-3, "|δ| below this counts as no change"),
            f("gamma", DEFAULT_GAMMA, 0.5, 1.0, "weight fraction that makes a sign consensus"),
            lam(),
        )
    ),
    description="Seed paper Eq. 2: keep base / sign consensus mean / weighted median.",
    kernel=consensus_kernel,
)
