"""Chunked linear combination ``c₀·base + Σ cⱼ·δⱼ``: the memory-bound core of linear merges.

Adding k deltas one full-size ``add_`` at a time streams the output through memory k times;
walking cache-sized chunks keeps each output chunk resident while every delta is added to
it, so the merge reads each input once and writes the output once (the ``torch.add`` floor).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mergenet.merge_strategies._alloc import empty_f32
from mergenet.merge_strategies._parallel import for_chunks


def lincomb(
    base: torch.Tensor, base_coef: float, deltas: Sequence[torch.Tensor], coefs: Sequence[float]
) -> torch.Tensor:
    """float32 ``base_coef·base + Σ coefs[j]·deltas[j]``, shaped like ``base``."""
    shape = base.shape
    b = base.detach().reshape(-1)
    ds = [d.detach().reshape(-1) for d in deltas]
    n = b.numel()
    out = empty_f32(n)

    def chunk(s: int, e: int) -> None:
        o = out[s:e]
        if base_coef == 1.0:
            o.copy_(b[s:e])
        else:
            torch.mul(b[s:e], base_coef, out=o)
        for d, c in zip(ds, coefs, strict=True):
            if c != 0.0:
                o.add_(d[s:e], alpha=c)

    for_chunks(n, chunk)
    return out.reshape(shape)
