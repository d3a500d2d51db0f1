"""mergenet's own methods, registered with mergekit so every recipe exports as runnable YAML.

``ensure_registered()`` adds ``mergenet_consensus`` (seed paper Eq. 2) and ``mergenet_expo``
(ExPO) to mergekit's registry once per process. The implementations here are deliberately
plain, full-tensor reference code written apart from the fused kernels in ``consensus`` and
``expo``; the tests hold the kernels to these through mergekit's own ``run_merge``.
mergekit has no plugin discovery, so a process that runs such a YAML must import this module
first — ``mergenet merge --mergekit-yaml FILE --out DIR`` does that.
"""

from __future__ import annotations

from typing import Any

import torch
from mergekit.merge_methods import (
    BasePolicy,
    InputContract,
    PerNonBase,
    TensorGroup,
    merge_method,
    register,
    registered_methods,
)
from mergekit.merge_methods.base import (
    FunctionalGroupMergeMethod,
    MergeMethodSpec,
    ParameterScope,
    ParameterSpec,
)

from mergenet.merge_strategies import consensus as _consensus
from mergenet.merge_strategies import expo as _expo


@merge_method(
    name=_expo.MERGEKIT_NAME,
    pretty_name="ExPO extrapolation (mergenet)",
    reference_url="https://arxiv.org/abs/2404.16792",
    contract=InputContract(base=BasePolicy.REQUIRED),
)
def expo_merge(
    group: TensorGroup, weight: PerNonBase[float], alpha: float = _expo.DEFAULT_ALPHA
) -> torch.Tensor:
    base = group.base.tensor
    entries = group.non_base
    if not entries:
        return base
    work = base.float()
    total = sum(weight[e.id] for e in entries)
    if abs(total) < 1e-8:
        total = 1.0
    average = sum((weight[e.id] / total) * (e.tensor.float() - work) for e in entries)
    return (work + (1.0 + alpha) * average).to(base.dtype)


def _consensus_reference(
    group: TensorGroup, *, weight: Any, epsilon: float, gamma: float, **rest: Any
) -> torch.Tensor:
    scale = rest["lambda"]
    base = group.base.tensor
    entries = group.non_base
    if not entries:
        return base
    work = base.float()
    deltas = [e.tensor.float() - work for e in entries]
    ws = [float(weight[e.id]) for e in entries]
    zeros = torch.zeros_like(work)
    w_pos, w_neg, m_pos, m_neg = zeros.clone(), zeros.clone(), zeros.clone(), zeros.clone()
    for d, w in zip(deltas, ws, strict=True):
        active = (d.abs() >= epsilon) & (d != 0)
        w_pos += torch.where(active & (d > 0), w, 0.0)
        w_neg += torch.where(active & (d < 0), w, 0.0)
        m_pos += torch.where(active & (d > 0), w * d.abs(), 0.0)
        m_neg += torch.where(active & (d < 0), w * d.abs(), 0.0)
    w_active = w_pos + w_neg
    plus = w_pos >= w_neg
    w_major = torch.where(plus, w_pos, w_neg)
    agree = (w_active > 0) & (w_major >= gamma * w_active)
    safe = torch.where(w_major > 0, w_major, 1.0)
    consensus = torch.where(plus, m_pos / safe, -m_neg / safe)
    # Lower weighted median of the active deltas: the smallest candidate value v whose
    # cumulative active weight (over candidates <= v) reaches half the active weight.
    median = torch.full_like(work, float("inf"))
    for v in deltas:
        below = zeros.clone()
        for d, w in zip(deltas, ws, strict=True):
            active = (d.abs() >= epsilon) & (d != 0)
            below += torch.where(active & (d <= v), w, 0.0)
        v_active = (v.abs() >= epsilon) & (v != 0)
        ok = v_active & (below >= 0.5 * w_active)
        median = torch.where(ok & (v < median), v, median)
    median = torch.where(torch.isfinite(median), median, 0.0)
    delta = torch.where(agree, consensus, torch.where(w_active > 0, median, 0.0))
    return (work + scale * delta).to(base.dtype)


consensus_merge = FunctionalGroupMergeMethod(
    MergeMethodSpec(
        name=_consensus.MERGEKIT_NAME,
        pretty_name="Eq. 2 consensus resolution (mergenet)",
        parameters=(
            ParameterSpec("weight", float, ParameterScope.NON_BASE),
            ParameterSpec(
                "epsilon", float, ParameterScope.SHARED, default=_consensus.DEFAULT_EPSILON
            ),
            ParameterSpec("gamma", float, ParameterScope.SHARED, default=_consensus.DEFAULT_GAMMA),
            ParameterSpec("lambda", float, ParameterScope.SHARED, default=1.0),
        ),
        contract=InputContract(base=BasePolicy.REQUIRED),
    ),
    _consensus_reference,
)


def ensure_registered() -> None:
    """Register mergenet's methods with mergekit (idempotent)."""
    from mergenet.merge_strategies.paper_methods_mergekit import METHODS

    have = {m.spec.name for m in registered_methods()}
    for method in (consensus_merge, expo_merge, *METHODS):
        if method.spec.name not in have:
            register(method)
