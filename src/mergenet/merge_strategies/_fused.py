"""TIES' combination step compiled into one pass (numba): the hot loop of TIES and DARE-TIES.

For each chunk of a tensor, the torch version of this step ran ~20 ops, each a full pass over
a k×chunk stack in L2/L3: sparsify and weight every delta, sum, elect a sign, keep the
agreeing entries, sum again, count the kept weights, divide, add to the base. Here one
compiled function walks the chunk in L1-sized blocks and does all of it while the block is
in cache, so the deltas are read once and the output written once.

It rounds as the torch ops did, which is how mergekit rounds (the tests compare the merged
tensors with mergekit's ``ties`` / ``dare_ties`` to ≤1e-6): every product and sum is float32,
the sums run over the deltas left to right as torch's dim-0 reduction does, a total of -0
elects the negative sign, and the final ``base + λ·mixed`` is one fused multiply-add, as
``torch.add(..., alpha=λ)`` computes it (emulated exactly in float64: the product of two
float32 values is exact there).

The per-delta selection is encoded as ``kinds``: 0 all dropped, 1 all kept, 2 magnitude
threshold (hardshrink: keep |x| > shrink), 3 random mask (a uint8 1/0 array).
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
"""Annotations only: numba compiles for the types it is called with."""

ZERO, ALL, THRESHOLD, MASK = 0, 1, 2, 3

_BLOCK = 1024
"""Elements per block: k+3 float32 rows of it stay in L1 for the k ≤ 8 the loop uses."""


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _put(row: F32, t: F32, i: int, v: np.float32, first: bool) -> None:  # pragma: no cover
    row[i] = v
    t[i] = v if first else t[i] + v


@numba.njit(nogil=True, cache=True, boundscheck=False)
def _fill(  # pragma: no cover - compiled
    row: F32, t: F32, first: bool, d: F32, mk: Any, kind: int, th: float, c: float
) -> None:
    """``row`` ← sparsify(``d``)·c, rounded as ``hardshrink(δ)·c`` / ``(mask·δ)·c``, and the
    running total ``t`` ← ``row`` (first delta) or ``t + row`` (the left-to-right dim-0 sum).

    A dropped entry is +0 here where mask·δ gave ±0, and the first delta starts the total
    without torch's ``+ 0``: both only decide the sign of an all-zero total, where no value is
    kept either way."""
    zero = np.float32(0.0)
    m = d.shape[0]
    if kind == ZERO:
        for i in range(m):
            _put(row, t, i, zero * c, first)
    elif kind == ALL:
        for i in range(m):
            _put(row, t, i, d[i] * c, first)
    elif kind == THRESHOLD:
        for i in range(m):
            x = d[i]
            _put(row, t, i, (x if (x > th or x < -th) else zero) * c, first)
    else:
        for i in range(m):
            _put(row, t, i, (d[i] if mk[i] != 0 else zero) * c, first)


@numba.njit(nogil=True, cache=True, boundscheck=False, inline="always")
def _finish(  # pragma: no cover - compiled
    b: F32, o: F32, mx: F32, dv: F32, m: int, normalize: bool, lam64: np.float64
) -> None:
    """``o`` ← ``b + λ·mixed`` (divided by the kept weights when ``normalize``)."""
    zero = np.float32(0.0)
    one = np.float32(1.0)
    if normalize:
        for i in range(m):
            q = dv[i]
            o[i] = np.float32(
                np.float64(b[i]) + lam64 * np.float64(mx[i] / (q if q != zero else one))
            )
    else:
        for i in range(m):
            o[i] = np.float32(np.float64(b[i]) + lam64 * np.float64(mx[i]))


@numba.njit(nogil=True, cache=True, boundscheck=False)
def ties_combine(  # pragma: no cover - compiled
    base: F32,
    deltas: Any,
    masks: Any,
    kinds: npt.NDArray[np.int64],
    shrink: F32,
    coef: F32,
    weights: F32,
    normalize: bool,
    lam: np.float32,
    out: F32,
    start: int,
    end: int,
) -> None:
    """``out[start:end]`` ← base + λ·(sum of the sign-agreeing sparsified, weighted deltas),
    divided by the summed weights of the kept deltas when ``normalize``.

    Every loop indexes a block-sized view from 0, which lets LLVM drop numba's negative-index
    wraparound and vectorise (indexing ``d[s + i]`` directly ran 3× slower).
    """
    k = len(deltas)
    V = np.empty((k, _BLOCK), np.float32)
    total = np.empty(_BLOCK, np.float32)
    sign = np.empty(_BLOCK, np.float32)
    mixed = np.empty(_BLOCK, np.float32)
    div = np.empty(_BLOCK, np.float32)
    zero = np.float32(0.0)
    lam64 = np.float64(lam)
    for s in range(start, end, _BLOCK):
        e = min(s + _BLOCK, end)
        m = e - s
        t = total[:m]
        for j in range(k):
            mk = masks[j][s:e] if kinds[j] == MASK else masks[j]
            _fill(V[j], t, j == 0, deltas[j][s:e], mk, kinds[j], shrink[j], coef[j])
        sg = sign[:m]
        mx = mixed[:m]
        dv = div[:m]
        w = weights[0]
        v0 = V[0]
        for i in range(m):
            g = np.float32(math.copysign(1.0, t[i]))
            sg[i] = g
            x = v0[i]
            kept = x * g > zero
            mx[i] = x if kept else zero
            dv[i] = w if kept else zero
        for j in range(1, k):
            w = weights[j]
            vj = V[j]
            for i in range(m):
                x = vj[i]
                kept = x * sg[i] > zero
                mx[i] += x if kept else zero
                dv[i] += w if kept else zero
        _finish(base[s:e], out[s:e], mx, dv, m, normalize, lam64)
