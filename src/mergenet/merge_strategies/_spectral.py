"""Shared linear algebra for the spectral merges (TSV-Merge, Iso-C, Iso-CTS).

Every spectral method here works per 2-D tensor on float32 copies of the (weighted) task
matrices ``w_k·δ_k``; anything that is not a matrix (norms, biases) falls back to a plain
combination chosen by the method. Singular directions whose singular value is numerically
zero (below ``max(m, n)·eps·σ_max``, the LAPACK rank rule) are dropped before any
orthogonalisation: their vectors are arbitrary, and a whitening step would otherwise rotate
the real directions towards them (a delta that is all zeros on a tensor, which is how a
missing tensor arrives, must change nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def is_matrix(t: torch.Tensor) -> bool:
    """A tensor the spectral methods decompose: 2-D with both sides at least 2."""
    return t.dim() == 2 and min(t.shape) >= 2


def weighted(deltas: Sequence[torch.Tensor], weights: Sequence[float]) -> list[torch.Tensor]:
    """The task matrices ``w_k·δ_k`` as float32 (a weight scales its delta before anything)."""
    return [d.detach().float() * float(w) for d, w in zip(deltas, weights, strict=True)]


def svd(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD ``m = U·diag(S)·Vᵀ`` (returns U, S, V) truncated to the numerical rank."""
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    if s.numel() == 0 or float(s[0]) == 0.0:
        return u[:, :0], s[:0], vh[:0].T
    tol = max(m.shape) * torch.finfo(torch.float32).eps * float(s[0])
    r = int((s > tol).sum())
    return u[:, :r], s[:r], vh[:r].T


def procrustes(x: torch.Tensor) -> torch.Tensor:
    """The nearest matrix with orthonormal columns (or rows, if wider than tall) to ``x``:
    ``P·Qᵀ`` from ``x = P·Σ·Qᵀ`` (orthogonal Procrustes). Identity on an already
    orthonormal ``x``, which is what makes one task come back unchanged.

    Restricted to ``x``'s numerical range (``svd`` above): where columns repeat (two tasks
    with the same direction, e.g. a copied delta) the full polar factor would add an
    arbitrary null-space direction; restricted, ``[u, u]`` becomes ``[u, u]/√2`` and the
    two copies of a task merge as one."""
    if x.shape[1] == 0:
        return x
    p, _, q = svd(x)
    return p @ q.T


def rebuild(u: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``U·diag(s)·Vᵀ`` without forming the diagonal."""
    return (u * s) @ v.T
