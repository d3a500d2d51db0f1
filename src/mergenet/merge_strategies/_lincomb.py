"""Chunked linear combination ``c₀·base + Σ cⱼ·δⱼ``: the memory-bound core of linear merges.

Adding k deltas one full-size ``add_`` at a time streams the output through memory k times;
walking chunks keeps each output chunk in cache while every delta is added to it, so the merge
reads each input once and writes the output once (the ``torch.add`` floor). The chunk is large
(``CHUNK`` elements, 2 MiB of float32: L2/L3-resident) because each torch op costs a few
microseconds of dispatch whatever its size — at 32768 elements that overhead was half the
time. When base and deltas are float32, the first delta is added by the op that reads the
base (one op fewer per chunk). The order of the additions is unchanged:
``((c₀·b + c₁·δ₁) + c₂·δ₂) + …``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mergenet.merge_strategies._alloc import empty_f32
from mergenet.merge_strategies._parallel import for_chunks

CHUNK = 1 << 19


def lincomb(
    base: torch.Tensor, base_coef: float, deltas: Sequence[torch.Tensor], coefs: Sequence[float]
) -> torch.Tensor:
    """float32 ``base_coef·base + Σ coefs[j]·deltas[j]``, shaped like ``base``."""
    shape = base.shape
    b = base.detach().reshape(-1)
    terms = [
        (d.detach().reshape(-1), float(c)) for d, c in zip(deltas, coefs, strict=True) if c != 0.0
    ]
    n = b.numel()
    out = empty_f32(n)
    # torch.add computes in its inputs' dtype: fuse only when that is float32 already.
    fuse_first = bool(terms) and b.dtype == terms[0][0].dtype == torch.float32

    def chunk(s: int, e: int) -> None:
        o = out[s:e]
        rest = terms
        if base_coef != 1.0:
            torch.mul(b[s:e], base_coef, out=o)
        elif fuse_first:
            d, c = terms[0]
            torch.add(b[s:e], d[s:e], alpha=c, out=o)
            rest = terms[1:]
        else:
            o.copy_(b[s:e])
        for d, c in rest:
            o.add_(d[s:e], alpha=c)

    for_chunks(n, chunk, CHUNK)
    return out.reshape(shape)
