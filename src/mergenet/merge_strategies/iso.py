"""Iso-C and Iso-CTS: isotropic merging (Marczak et al., ICML 2025, "No task left behind",
arXiv:2502.04959).

**Iso-C.** Per 2-D tensor, sum the task matrices (``M = Σ_t w_t·δ_t``, task arithmetic's
direction), take ``M = U·diag(σ)·Vᵀ`` and replace every singular value by their mean:
``lambda·σ̄·U·Vᵀ``. A sum is dominated by the few directions that all tasks share; a flat
spectrum gives the directions that only one task uses the same scale, which the paper shows
raises the alignment of the merge with every task's subspace. Only the numerically non-zero
singular values count (see ``_spectral``): the paper's matrices are full rank, and a null
direction's vectors are arbitrary, so inflating them to σ̄ would inject noise.

**Iso-CTS.** Keeps the top ``common`` share of ``M``'s rank r (``k_c = round(common·r)``
directions), and fills the rest with each task's own top ``k_t = ⌊(r − k_c)/T⌋`` directions
after projecting the common ones out of it (``τ_t − U_c·U_cᵀ·τ_t``). The concatenated bases
are orthogonalised (Procrustes, as in TSV) and the spectrum flattened to the mean of the
selected singular values. With one task and ``common`` 1 it is Iso-C.

Non-matrix tensors (norm gains, biases) get ``lambda·M``, the sum both methods start from.
Default ``lambda`` 1.0 (the paper tunes α per benchmark on validation data, 1.0–1.5 for
8 ViT tasks); the loop searches it in [0, 2].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from mergenet.merge_strategies._common import lam
from mergenet.merge_strategies._direct import DirectStrategy
from mergenet.merge_strategies._spectral import is_matrix, procrustes, svd, weighted
from mergenet.merge_strategies.space import ParamSpace, f

ISO_C_NAME = "mergenet_iso_c"
ISO_CTS_NAME = "mergenet_iso_cts"
DEFAULT_COMMON = 0.8


def iso_c_delta(taus: Sequence[torch.Tensor]) -> torch.Tensor:
    """``σ̄·U·Vᵀ`` of the summed task matrices (a flat spectrum)."""
    u, s, v = svd(torch.stack(list(taus)).sum(0))
    if s.numel() == 0:
        return torch.zeros_like(taus[0])
    return s.mean() * (u @ v.T)


def iso_cts_delta(taus: Sequence[torch.Tensor], common: float) -> torch.Tensor:
    """Common top directions of the sum plus each task's own, orthogonalised, flattened."""
    u, s, v = svd(torch.stack(list(taus)).sum(0))
    r = min(taus[0].shape)
    kc = min(s.numel(), max(1, round(common * r)))
    kt = (r - kc) // len(taus)
    us, vs, ss = [u[:, :kc]], [v[:, :kc]], [s[:kc]]
    if kt > 0:
        uc = u[:, :kc]
        for tau in taus:
            ut, st, vt = svd(tau - uc @ (uc.T @ tau))
            us.append(ut[:, :kt])
            vs.append(vt[:, :kt])
            ss.append(st[:kt])
    sel = torch.cat(ss)
    if sel.numel() == 0:
        return torch.zeros_like(taus[0])
    return sel.mean() * (procrustes(torch.cat(us, 1)) @ procrustes(torch.cat(vs, 1)).T)


def _kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    task_specific: bool,
) -> torch.Tensor:
    taus = weighted(deltas, weights)
    b = base.detach().float()
    if not is_matrix(b):
        delta = torch.stack(taus).sum(0)
    elif task_specific:
        delta = iso_cts_delta(taus, float(params["common"]))
    else:
        delta = iso_c_delta(taus)
    return b + float(params["lambda"]) * delta


def iso_c_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    return _kernel(base, deltas, weights, params, task_specific=False)


def iso_cts_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
) -> torch.Tensor:
    return _kernel(base, deltas, weights, params, task_specific=True)


ISO_C = DirectStrategy(
    name="iso_c",
    mergekit_method=ISO_C_NAME,
    space=ParamSpace((lam(),)),
    description="Iso-C: the summed task matrix with its singular values set to their mean.",
    method=iso_c_kernel,
)

ISO_CTS = DirectStrategy(
    name="iso_cts",
    mergekit_method=ISO_CTS_NAME,
    space=ParamSpace(
        (
            lam(),
            f("common", DEFAULT_COMMON, 0.1, 1.0, "share of the rank kept from the summed matrix"),
        )
    ),
    description="Iso-CTS: common plus task-specific directions, flat spectrum.",
    method=iso_cts_kernel,
)
