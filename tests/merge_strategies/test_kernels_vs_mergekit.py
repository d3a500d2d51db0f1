"""The fused kernels equal mergekit's own implementation (max abs diff <= 1e-6, float32)."""

from __future__ import annotations

import pytest
import torch
from mergekit.merge_methods import merge_state_dicts, merge_tensors

from mergenet.merge_strategies import registry
from mergenet.merge_strategies.mergekit_plugin import ensure_registered

TOL = 1e-6
WEIGHTS = [0.7, 0.4, 1.1, 0.25]


def _ours(name, base, deltas, weights, params, seed=0):
    strategy = registry.get(name)
    p = strategy.space.contain(params)
    out = {}
    for t in base:
        g = torch.Generator().manual_seed(seed)
        out[t] = strategy.merge_tensor(base[t], [d[t] for d in deltas], weights, p, generator=g)
    return out


def _mergekit(name, base, fts, weights, params):
    strategy = registry.get(name)
    ensure_registered()
    p = strategy.mergekit_parameters(strategy.space.contain(params), len(fts), weights)
    models = {f"m{j}": ft for j, ft in enumerate(fts)}
    if strategy.base_input:
        models = {"base": base, **models}
    with torch.no_grad():
        return merge_state_dicts(
            models,
            strategy.mergekit_method,
            parameters=p,
            base="base" if strategy.base_input else None,
        )


def _maxdiff(a, b):
    return max(float((a[n].float() - b[n].float()).abs().max()) for n in a)


CASES = [
    ("linear", {}),
    ("linear", {"normalize": False}),
    ("task_arithmetic", {}),
    ("task_arithmetic", {"lambda": 0.6, "normalize": True}),
    ("ties", {}),
    ("ties", {"density": 0.5}),
    ("ties", {"density": 0.2, "lambda": 1.3, "normalize": False}),
    ("ties", {"density": 0.35, "rescale": True}),
    ("ties", {"density": 0.01}),
    ("dare_ties", {"density": 1.0}),
    ("dare_ties", {"density": 1.0, "normalize": True, "lambda": 0.8}),
    ("dare_linear", {"density": 1.0}),
    ("dare_linear", {"density": 1.0, "normalize": True}),
    ("expo", {}),
    ("expo", {"alpha": 1.2}),
    ("consensus", {}),
    ("consensus", {"epsilon": 5e-3, "gamma": 0.9, "lambda": 1.5}),
    ("consensus", {"epsilon": 0.0, "gamma": 0.5}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("k", [1, 2, 4])
def test_kernel_matches_mergekit(models4, name, params, k):
    base, fts, deltas = models4
    weights = WEIGHTS[:k]
    ours = _ours(name, base, deltas[:k], weights, params)
    theirs = _mergekit(name, base, fts[:k], weights, params)
    assert ours.keys() == theirs.keys()
    assert _maxdiff(ours, theirs) <= TOL


def test_kernel_matches_mergekit_with_negative_weight(models4):
    base, fts, deltas = models4
    weights = [0.8, -0.3, 0.5]
    for name, params in [("ties", {"density": 0.4}), ("task_arithmetic", {}), ("linear", {})]:
        ours = _ours(name, base, deltas[:3], weights, params)
        theirs = _mergekit(name, base, fts[:3], weights, params)
        assert _maxdiff(ours, theirs) <= TOL, name


def test_ties_actually_prunes(models4):
    """Guard against a vacuous comparison: density changes the result."""
    base, _, deltas = models4
    full = _ours("ties", base, deltas, WEIGHTS, {"density": 1.0})
    half = _ours("ties", base, deltas, WEIGHTS, {"density": 0.3})
    assert _maxdiff(full, half) > 1e-3


def test_magnitude_ties_at_the_threshold_are_all_kept():
    """Documented difference: mergekit's argsort keeps an arbitrary subset of tied entries."""
    base = torch.zeros(10)
    delta = torch.tensor([0.5, -0.3, 0.3, 0.3, 0.1, -0.05, 0.3, 0.02, 0.9, -0.3])
    s = registry.get("ties")
    out = s.merge_tensor(base, [delta], [1.0], s.space.contain({"density": 0.4}))
    # top-4 by magnitude is {0.9, 0.5} plus two of the five entries tied at 0.3: all five kept.
    kept = out != 0
    assert kept.tolist() == [True, True, True, True, False, False, True, False, True, True]
    theirs = merge_tensors([base, base + delta], "ties", parameters={"weight": [1.0],
                           "density": 0.4}, base_index=0)  # fmt: skip
    assert int((theirs != 0).sum()) == 4
    assert torch.equal(out[theirs != 0], theirs[theirs != 0])
