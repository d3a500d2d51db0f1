"""Assumptions the fused kernels rely on for rounding exactly as mergekit (torch) does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

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
