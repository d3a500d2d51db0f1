"""Fused generalized task arithmetic: task arithmetic, TIES, DARE-TIES and DARE-linear.

This reproduces mergekit's ``GeneralizedTaskArithmeticMerge.merge_group`` (0.1.5) step for
step — sparsify each delta (magnitude top-k or Bernoulli drop, optional L1 rescale), weight
it, elect a sign per coordinate by the sum of the weighted deltas (TIES "sum" consensus),
keep the deltas that agree, optionally divide by the summed weights of the kept deltas,
scale by ``lambda`` and add to the base — without mergekit's k full-size temporaries per
step. Global statistics (top-k thresholds, L1 norms, random masks) are computed once per
delta, in parallel across deltas; the combination then runs over cache-sized chunks: for
the sign-electing merges (TIES, DARE-TIES) in one compiled pass (``_fused``), for the linear
ones with arithmetic-only torch ops. The tests hold both to ≤1e-6 of mergekit on random
models.

Two documented differences: entries tied in magnitude at the top-k threshold are all kept
(mergekit's unstable argsort keeps an arbitrary subset of them), and DARE's keep
probability is ``density`` rounded to a multiple of 2⁻¹⁶ (see ``_select``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from mergenet.merge_strategies import _fused, _parallel
from mergenet.merge_strategies._alloc import empty_f32
from mergenet.merge_strategies._lincomb import lincomb
from mergenet.merge_strategies._select import (
    MASK_CHUNK,
    bernoulli_threshold,
    draw_keep,
    kth_largest_abs,
    magnitude_keep_count,
    mask_stream,
)

Sparsification = Literal["magnitude", "random"] | None
_RESCALE_EPS = 1e-7
_local = threading.local()


CHUNK = 1 << 18
"""Elements per chunk of the combination pass (a k×CHUNK float32 stack stays L2/L3-resident).
Also the chunk of DARE's rescale sums, whose rounding therefore depends on it: keep it fixed."""


def _scratch(name: str, n: int) -> torch.Tensor:
    """A per-thread float32 buffer (no allocation per chunk)."""
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    t = bufs.get(name)
    if t is None or t.numel() < n:
        t = bufs[name] = torch.empty(max(n, CHUNK), dtype=torch.float32)
    return t[:n]


def per_delta(value: Any, k: int, name: str) -> list[float]:
    """Broadcast a scalar parameter to k deltas, or check a per-delta list."""
    if isinstance(value, list | tuple):
        if len(value) != k:
            raise ValueError(f"{name} has {len(value)} values for {k} deltas")
        return [float(v) for v in value]
    return [float(value)] * k


def _flat32(t: torch.Tensor) -> torch.Tensor:
    t = t.detach().reshape(-1)
    return (t if t.dtype == torch.float32 else t.float()).contiguous()


@dataclass
class _Sel:
    """How one delta is sparsified: all kept, all dropped, top-k or a random mask."""

    kind: Literal["all", "zero", "thr", "mask"]
    shrink: float = 0.0  # hardshrink lambda: keeps |x| > shrink, i.e. |x| >= threshold
    mask: torch.Tensor | None = None  # uint8 1/0 keep mask (random sparsification)
    scale: float = 1.0


def _rescale(before: float, after: float) -> float:
    if before < _RESCALE_EPS or after < _RESCALE_EPS:
        return 1.0
    ratio = torch.tensor(before, dtype=torch.float32) / torch.tensor(after, dtype=torch.float32)
    return float(ratio)


def _random_sel(d: torch.Tensor, density: float, rescale: bool, seed: int) -> _Sel:
    """DARE's selection: a uint8 1/0 keep mask (``_select.draw_keep``) and, with ``rescale``,
    the L1 ratio Σ|δ| / Σ|δ·mask|.

    One pass over chunks: each chunk's random bytes are drawn, compared and (for the rescale)
    summed while they are in cache. The mask is kept as uint8, which converts to float32 in
    one cheap op per chunk (torch's bool → float copy is several times slower).
    """
    n = d.numel()
    threshold = bernoulli_threshold(density)
    if threshold > 32767:
        return _Sel("all")
    stream = mask_stream(torch.Generator().manual_seed(seed))
    keep = np.empty(n, np.uint8)
    mask = torch.from_numpy(keep)
    before = after = 0.0
    for s in range(0, n, MASK_CHUNK):
        e = min(n, s + MASK_CHUNK)
        draw_keep(stream, threshold, keep[s:e].view(np.bool_))
        if rescale:
            a = torch.abs(d[s:e], out=_scratch("abs", e - s))
            before += float(a.sum())
            after += float(torch.dot(a, _scratch("m", e - s).copy_(mask[s:e])))
    return _Sel("mask", mask=mask, scale=_rescale(before, after) if rescale else 1.0)


def _prepare(
    d: torch.Tensor, density: float, kind: Sparsification, rescale: bool, seed: int | None
) -> _Sel:
    n = d.numel()
    if kind is None or density >= 1:
        return _Sel("all")
    if kind == "magnitude":
        keep = magnitude_keep_count(density, n)
        if keep == 0:
            return _Sel("zero")
        t = kth_largest_abs(d, keep)
        shrink = float(np.nextafter(np.float32(t), np.float32(0)))
        sel = _Sel("thr", shrink=shrink)
        if rescale:
            before = float(d.abs().sum(dtype=torch.float64))
            after = float(F.hardshrink(d, shrink).abs().sum(dtype=torch.float64))
            sel.scale = _rescale(before, after)
        return sel
    assert seed is not None
    return _random_sel(d, density, rescale, seed)


def _fill_rows(
    V: torch.Tensor, ds: Sequence[torch.Tensor], sels: Sequence[_Sel], s: int, e: int
) -> None:
    """Row j of ``V`` ← ``sparsify(δⱼ)[s:e]`` (unweighted)."""
    for j, sel in enumerate(sels):
        row, chunk = V[j], ds[j][s:e]
        if sel.kind == "zero":
            row.zero_()
        elif sel.kind == "all":
            row.copy_(chunk)
        elif sel.kind == "thr":
            torch.hardshrink(chunk, sel.shrink, out=row)
        else:
            assert sel.mask is not None
            row.copy_(sel.mask[s:e]).mul_(chunk)


def _sum_rows(V: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``V.sum(0)`` rounded exactly as torch rounds it (mergekit's ``deltas.sum(dim=0)``).

    For k ≤ 4 rows torch's dim-0 reduction is the plain left-to-right sum from 0 (checked
    bitwise by the tests), which elementwise adds compute at a third of the cost.
    """
    k = V.shape[0]
    if k > 4:
        return torch.sum(V, 0, out=out)
    if k == 1:
        return torch.add(V[0], 0.0, out=out)
    torch.add(V[0], V[1], out=out)
    for j in range(2, k):
        out.add_(V[j])
    return out


def _stack(name: str, k: int, m: int) -> torch.Tensor:
    """A per-thread (k, m) float32 buffer."""
    return _scratch(name, k * CHUNK)[: k * m].view(k, m)


_NO_MASK = np.zeros(1, np.uint8)
_KIND = {"zero": _fused.ZERO, "all": _fused.ALL, "thr": _fused.THRESHOLD, "mask": _fused.MASK}


def _fused_inputs(
    b: torch.Tensor,
    ds: Sequence[torch.Tensor],
    sels: Sequence[_Sel],
    coef: Sequence[float],
    w: Sequence[float],
) -> tuple:
    """The numpy views and per-delta arrays ``_fused.ties_combine`` takes (no copies)."""
    masks = tuple(s.mask.numpy() if s.mask is not None else _NO_MASK for s in sels)
    return (
        b.numpy(),
        tuple(d.numpy() for d in ds),
        masks,
        np.array([_KIND[s.kind] for s in sels], np.int64),
        np.array([s.shrink for s in sels], np.float32),
        np.array(coef, np.float32),
        np.array(w, np.float32),
    )


def gta_kernel(
    base: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    params: Mapping[str, Any],
    generator: torch.Generator | None,
    *,
    sparsification: Sparsification,
    consensus: bool,
) -> torch.Tensor:
    """One tensor of a task-arithmetic-family merge (see module docstring); float32 out."""
    k = len(deltas)
    shape = base.shape
    b = _flat32(base)
    if k == 0:
        return b.clone().reshape(shape)
    n = b.numel()
    ds = [_flat32(d) for d in deltas]
    w = [float(x) for x in weights]
    density = per_delta(params.get("density", 1.0), k, "density")
    rescale = bool(params.get("rescale", False))
    normalize = bool(params.get("normalize", False))
    lam = float(params.get("lambda", 1.0))

    sels = _select(ds, density, sparsification, rescale, generator)
    coef = [w[j] * sels[j].scale for j in range(k)]
    if not consensus:
        return _linear(b, ds, sels, coef, (sum(w) if normalize else 1.0), lam).reshape(shape)
    out = empty_f32(n)
    inputs = _fused_inputs(b, ds, sels, coef, w)
    out_np, lam32 = out.numpy(), np.float32(lam)  # torch.add casts alpha to float32 too

    def ties_chunk(s: int, e: int) -> None:
        _fused.ties_combine(*inputs, bool(normalize), lam32, out_np, s, e)

    _parallel.for_chunks(n, ties_chunk, CHUNK)
    return out.reshape(shape)


def _select(
    ds: Sequence[torch.Tensor],
    density: Sequence[float],
    sparsification: Sparsification,
    rescale: bool,
    generator: torch.Generator | None,
) -> list[_Sel]:
    """Each delta's selection (all, none, or a mask/threshold), prepared in parallel."""
    k = len(ds)
    seeds: list[int | None] = [None] * k
    if sparsification == "random" and any(x < 1 for x in density):
        if generator is None:
            raise ValueError("random sparsification (DARE) needs a torch.Generator")
        seeds = [int(v) for v in torch.randint(0, 2**62, (k,), generator=generator)]
    if sparsification is None or all(x >= 1 for x in density):
        return [_Sel("all") for _ in range(k)]
    return _parallel.map_tasks(
        [partial(_prepare, ds[j], density[j], sparsification, rescale, seeds[j]) for j in range(k)]
    )


def _linear(
    b: torch.Tensor,
    ds: Sequence[torch.Tensor],
    sels: Sequence[_Sel],
    coef: Sequence[float],
    divisor: float,
    lam: float,
) -> torch.Tensor:
    """``b + λ/divisor · Σ coefⱼ·(δⱼ·maskⱼ)`` without sign consensus (flat float32)."""
    if abs(divisor) < 1e-8:
        divisor = 1.0
    factor = lam / divisor
    live = [j for j in range(len(ds)) if sels[j].kind != "zero"]
    if all(sels[j].kind == "all" for j in live):
        return lincomb(b, 1.0, [ds[j] for j in live], [coef[j] * factor for j in live])
    lds, lsels = [ds[j] for j in live], [sels[j] for j in live]
    lcol = torch.tensor([[coef[j]] for j in live], dtype=torch.float32)
    n = b.numel()
    out = empty_f32(n)

    def linear_chunk(s: int, e: int) -> None:
        m = e - s
        V = _stack("V", len(live), m)
        _fill_rows(V, lds, lsels, s, e)
        V.mul_(lcol)  # (δⱼ·maskⱼ)·coefⱼ, as mergekit weights the sparsified deltas
        mixed = _sum_rows(V, _scratch("mixed", m))
        torch.add(b[s:e], mixed, alpha=factor, out=out[s:e])

    _parallel.for_chunks(n, linear_chunk, CHUNK)
    return out
