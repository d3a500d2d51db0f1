"""Assumptions the fused kernels rely on for rounding exactly as mergekit (torch) does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mergenet.merge_strategies import _fused
from mergenet.merge_strategies._gta import _sum_rows
from mergenet.merge_strategies._lincomb import lincomb
from mergenet.merge_strategies._select import kth_largest_abs


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("m", [1, 5, 33, 1000, 65536 + 3])
def test_sum_rows_is_torch_sum_bitwise(k, m):
    """For k <= 4 the rows are added elementwise; that must round as ``sum(dim=0)`` does."""
    g = torch.Generator().manual_seed(k * 1000 + m)
    scale = torch.rand(k, 1, generator=g) * 10.0 ** torch.randint(-4, 4, (k, 1), generator=g)
    V = torch.randn(k, m, generator=g) * scale
    V[torch.rand(k, m, generator=g) < 0.3] = 0.0
    ours = _sum_rows(V, torch.empty(m))
    assert torch.equal(ours.add(0.0).view(torch.int32), torch.sum(V, 0).add(0.0).view(torch.int32))


def test_lincomb_fused_first_add_rounds_like_copy_then_add():
    g = torch.Generator().manual_seed(0)
    b = torch.randn(1_000_003, generator=g)
    ds = [torch.randn(b.shape, generator=g) * 0.01 for _ in range(3)]
    cs = [0.3, -0.7, 1.1]
    ref = b.clone()
    for d, c in zip(ds, cs, strict=True):
        ref.add_(d, alpha=c)
    assert torch.equal(lincomb(b, 1.0, ds, cs), ref)
    # bfloat16 inputs: accumulated in float32, not fused into a bfloat16 add.
    bb, dbs = b.bfloat16(), [d.bfloat16() for d in ds]
    ref16 = bb.float()
    for d, c in zip(dbs, cs, strict=True):
        ref16.add_(d, alpha=c)
    assert torch.equal(lincomb(bb, 1.0, dbs, cs), ref16)


def _partition_kth_largest(x: torch.Tensor, k: int) -> float:
    a = np.abs(x.numpy())
    a.partition(a.size - k)
    return float(a[a.size - k])


@pytest.mark.parametrize(
    "data",
    ["normal", "integer ties", "nan and inf", "mostly zero"],
)
def test_sampled_kth_largest_abs_is_exact(data):
    """Above 2¹⁸ values the top-k threshold comes from a sample-bracketed selection; it must
    equal a full partition for every k, ties and non-finite values included."""
    n = (1 << 20) + 12345
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, generator=g) * 0.002
    if data == "integer ties":
        x = torch.randint(-3, 4, (n,), generator=g).float()
    elif data == "nan and inf":
        x[::997] = float("nan")
        x[5] = float("inf")
    elif data == "mostly zero":
        x[torch.rand(n, generator=g) < 0.9] = 0.0
    for k in [1, 2, 1000, n // 100, n // 2, n - 7, n]:
        ours, ref = kth_largest_abs(x, k), _partition_kth_largest(x, k)
        assert ours == ref or (np.isnan(ours) and np.isnan(ref)), (k, ours, ref)


def _ties_reference(b, ds, kinds, shrink, masks, coef, w, normalize, lam):
    """TIES' combination step as plain torch ops, in mergekit's order."""
    rows = []
    for d, kind, t, mk, c in zip(ds, kinds, shrink, masks, coef, strict=True):
        if kind == _fused.ZERO:
            x = torch.zeros_like(d)
        elif kind == _fused.ALL:
            x = d.clone()
        elif kind == _fused.THRESHOLD:
            x = torch.nn.functional.hardshrink(d, float(t))
        else:
            x = torch.from_numpy(mk).float() * d
        rows.append(x * torch.tensor(c, dtype=torch.float32))
    V = torch.stack(rows)
    sign = torch.copysign(torch.ones(()), V.sum(0))
    kept = V * sign > 0
    mixed = torch.where(kept, V, 0.0).sum(0)
    if normalize:
        div = (torch.tensor(w, dtype=torch.float32)[:, None] * kept).sum(0)
        mixed = mixed / torch.where(div == 0, 1.0, div)
    return torch.add(b, mixed, alpha=lam)


@pytest.mark.parametrize("k", [1, 2, 3, 8])
@pytest.mark.parametrize("normalize", [True, False])
def test_fused_ties_combine_is_the_torch_steps_bitwise(k, normalize):
    """The compiled one-pass combination rounds exactly as the step-by-step torch version,
    for every selection kind (dropped, kept, top-k threshold, random mask) and ragged ends."""
    n = 3 * 1024 + 77
    g = torch.Generator().manual_seed(k * 10 + normalize)
    b = torch.randn(n, generator=g)
    ds = [torch.randn(n, generator=g) * 10.0 ** float(j % 3 - 3) for j in range(k)]
    kinds = [(_fused.ALL, _fused.THRESHOLD, _fused.MASK, _fused.ZERO)[j % 4] for j in range(k)]
    shrink = [float(d.abs().median()) for d in ds]
    masks = [(torch.rand(n, generator=g) < 0.4).to(torch.uint8).numpy() for _ in range(k)]
    coef = [float(c) for c in torch.rand(k, generator=g) * 2 - 0.5]
    w = [float(c) for c in torch.rand(k, generator=g) + 0.1]
    lam = 0.7
    out = np.full(n, np.nan, np.float32)
    args = (
        b.numpy(),
        tuple(d.numpy() for d in ds),
        tuple(masks),
        np.array(kinds, np.int64),
        np.array(shrink, np.float32),
        np.array(coef, np.float32),
        np.array(w, np.float32),
        normalize,
        np.float32(lam),
        out,
    )
    _fused.ties_combine(*args, 0, 1500)  # two calls with a ragged split, as the chunks do
    _fused.ties_combine(*args, 1500, n)
    ref = _ties_reference(b, ds, kinds, shrink, masks, coef, w, normalize, lam)
    assert torch.equal(torch.from_numpy(out), ref)
