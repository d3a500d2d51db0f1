"""TSV-Merge: task singular vectors, decorrelated (Gargiulo et al., CVPR 2025, arXiv:2412.00081).

Per 2-D tensor, each task matrix ``τ_t = w_t·δ_t`` (m × n, full rank r = min(m, n)) is cut to
its top ``k = max(1, ⌊fraction·r / T⌋)`` singular triplets (T tasks), so together the tasks
fill about ``fraction`` of the layer's rank. The kept left vectors are concatenated,
``Û = [U_1,k … U_T,k]`` (m × Tk), likewise ``V̂``, and the singular values stacked. Two tasks'
vectors generally overlap, and that overlap is the interference TSV removes: ``Û`` and ``V̂``
are replaced by their nearest orthonormal matrices (orthogonal Procrustes, ``Û⊥ = P·Qᵀ`` from
``svd(Û) = P·Σ·Qᵀ``), and the merged task matrix is ``Û⊥·diag(σ̂)·V̂⊥ᵀ``, scaled by ``lambda``
(the paper's α; its default 1.0, as the paper's). Tensors that are not matrices (norm gains,
biases) get the paper's plain mean, ``lambda·Σ_t τ_t / T``.

Invariants (tests/merge_strategies/test_new_methods.py): one task with fraction 1 gives back
``base + lambda·τ`` (Procrustes is the identity on orthonormal vectors); two tasks on
orthogonal subspaces are summed exactly; an all-zero delta changes nothing.
Cost: T+2 thin SVDs per matrix; on the world's 192-wide Llama all eight contributors merge in
16 s on the loaded 2-core machine (the README's table of the paper merges), which is why it
is not one of the loop's defaults (``_direct``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mergenet.merge_strategies._common import lam
from mergenet.merge_strategies._direct import DirectStrategy
from mergenet.merge_strategies._spectral import is_matrix, procrustes, rebuild, svd, weighted
from mergenet.merge_strategies.space import ParamSpace, f

MERGEKIT_NAME = "mergenet_tsv"


def tsv_delta(taus: Sequence[torch.Tensor], fraction: float) -> torch.Tensor:
    """The decorrelated sum of the tasks' top singular triplets (see module docstring)."""
    m, n = taus[0].shape
    k = max(1, int(fraction * min(m, n) / len(taus)))
    us, ss, vs = [], [], []
    for tau in taus:
        u, s, v = svd(tau)
        us.append(u[:, :k])
        ss.append(s[:k])
        vs.append(v[:, :k])
    s_all = torch.cat(ss)
    if s_all.numel() == 0:
        return torch.zeros(m, n)
    return rebuild(procrustes(torch.cat(us, 1)), s_all, procrustes(torch.cat(vs, 1)))


def tsv_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    taus = weighted(deltas, weights)
    b = base.detach().float()
    if is_matrix(b):
        delta = tsv_delta(taus, float(params["fraction"]))
    else:
        delta = torch.stack(taus).mean(0)
    return b + float(params["lambda"]) * delta


STRATEGY = DirectStrategy(
    name="tsv",
    mergekit_method=MERGEKIT_NAME,
    space=ParamSpace(
        (
            lam(),
            f("fraction", 1.0, 0.05, 1.0, "share of each matrix's rank the tasks fill together"),
        )
    ),
    description="TSV-Merge: top singular vectors per task, decorrelated (Procrustes), summed.",
    method=tsv_kernel,
)
