"""DARE: reproducible from an explicit generator, equal to mergekit given the same mask, and
statistically a Bernoulli(density) drop with L1 rescaling (like mergekit's own)."""

from __future__ import annotations

import pytest
import torch
from mergekit import sparsify as mk_sparsify
from mergekit.merge_methods import merge_tensors

from mergenet.merge_strategies import registry
from mergenet.merge_strategies._select import MASK_CHUNK, bernoulli_keep, bernoulli_threshold

TOL = 1e-6


def _ours(name, base, deltas, weights, params, seed):
    s = registry.get(name)
    g = torch.Generator().manual_seed(seed)
    return s.merge_tensor(base, deltas, weights, s.space.contain(params), generator=g)


@pytest.mark.parametrize("name", ["dare_ties", "dare_linear"])
@pytest.mark.parametrize(
    "params",
    [
        {"density": 0.3},
        {"density": 0.7, "normalize": True, "lambda": 1.4},
        {"density": 0.5, "rescale": False},
    ],
)
def test_equals_mergekit_given_the_same_masks(monkeypatch, name, params):
    """Feed mergekit's DARE the masks our generator draws: the merges must then agree."""
    g = torch.Generator().manual_seed(3)
    base = torch.randn(257, 33, generator=g)
    deltas = [torch.randn(257, 33, generator=g) * 0.01 for _ in range(3)]
    weights = [0.6, 0.9, 0.4]
    seed = 11
    ours = _ours(name, base, deltas, weights, params, seed)

    seeds = torch.randint(0, 2**62, (3,), generator=torch.Generator().manual_seed(seed)).tolist()
    calls = iter(seeds)

    def our_bernoulli(tensor, density, rescale_norm=None):
        if density >= 1:
            return tensor
        g = torch.Generator().manual_seed(next(calls))
        mask = bernoulli_keep(tensor.numel(), density, g).reshape(tensor.shape).to(tensor.dtype)
        return mk_sparsify.rescaled_masked_tensor(tensor, mask, rescale_norm)

    monkeypatch.setattr(mk_sparsify, "bernoulli", our_bernoulli)
    s = registry.get(name)
    p = s.mergekit_parameters(s.space.contain(params), 3, weights)
    theirs = merge_tensors([base, *[base + d for d in deltas]], name, parameters=p, base_index=0)
    # mergekit sees (base + δ) − base, which can differ from δ by one rounding.
    assert float((ours - theirs).abs().max()) <= TOL
    assert float((ours - base).abs().max()) > 1e-3  # the merge did something


def test_same_seed_same_weights_other_seed_other_weights():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(300, 40, generator=g)
    deltas = [torch.randn(300, 40, generator=g) * 0.01 for _ in range(4)]
    a = _ours("dare_ties", base, deltas, [1.0] * 4, {"density": 0.4}, seed=5)
    b = _ours("dare_ties", base, deltas, [1.0] * 4, {"density": 0.4}, seed=5)
    c = _ours("dare_ties", base, deltas, [1.0] * 4, {"density": 0.4}, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("density", [0.1, 0.5, 0.9])
def test_drop_rate_and_rescaling(density):
    """One delta, weight 1: the result is δ·mask·s with P(keep)=density and s = L1 ratio."""
    n = 200_000
    g = torch.Generator().manual_seed(1)
    base = torch.zeros(n)
    delta = torch.randn(n, generator=g)
    out = _ours("dare_linear", base, [delta], [1.0], {"density": density}, seed=2)
    kept = out != 0
    rate = float(kept.float().mean())
    sd = (density * (1 - density) / n) ** 0.5
    assert abs(rate - density) < 5 * sd + 2**-16
    ratio = out[kept] / delta[kept]
    scale = float(ratio.mean())
    assert float((ratio - scale).abs().max()) < 1e-5  # one common rescale factor
    expected = float(delta.abs().sum() / delta[kept].abs().sum())
    assert scale == pytest.approx(expected, rel=1e-5)
    assert scale == pytest.approx(1 / density, rel=0.02)  # L1 rescale ≈ 1/density

    # mergekit's own DARE (torch.bernoulli) has the same statistics.
    torch.manual_seed(0)
    theirs = merge_tensors(
        [base, base + delta],
        "dare_linear",
        parameters={"weight": [1.0], "density": density},
        base_index=0,
    )
    their_kept = theirs != 0
    assert abs(float(their_kept.float().mean()) - density) < 5 * sd
    their_scale = float((theirs[their_kept] / delta[their_kept]).mean())
    assert their_scale == pytest.approx(scale, rel=0.02)


def test_density_quantisation_is_fine():
    assert bernoulli_threshold(0.5) == 0
    assert bernoulli_threshold(0.0) == -32768
    for d in (0.013, 0.37, 0.999):
        p = (bernoulli_threshold(d) + 32768) / 65536
        assert abs(p - d) <= 2**-17


def test_kernel_mask_is_bernoulli_keep_across_chunks():
    """Over several mask chunks (each with its own tie bytes), the kernel keeps exactly the
    entries ``bernoulli_keep`` draws from the same per-delta seed."""
    n = 2 * MASK_CHUNK + 1234
    delta = torch.randn(n, generator=torch.Generator().manual_seed(4))
    out = _ours("dare_linear", torch.zeros(n), [delta], [1.0], {"density": 0.3}, seed=9)
    (seed,) = torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(9)).tolist()
    keep = bernoulli_keep(n, 0.3, torch.Generator().manual_seed(seed))
    assert torch.equal(out != 0, keep)


def test_threads_do_not_change_the_merge():
    """Pool threads run torch ops serially, so 1 and 2 threads give bit-identical merges."""
    g = torch.Generator().manual_seed(2)
    base = torch.randn(3 * MASK_CHUNK + 17, generator=g)
    deltas = [torch.randn(base.shape, generator=g) * 0.01 for _ in range(3)]
    threads = torch.get_num_threads()
    outs = []
    try:
        for t in (1, 2):
            torch.set_num_threads(t)
            outs.append(_ours("dare_ties", base, deltas, [0.5, 0.3, 0.2], {"density": 0.4}, 1))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(outs[0], outs[1])
