"""The registry exposes every mergekit method and mergenet's own, and every strategy merges."""

from __future__ import annotations

import pytest
import torch
from mergekit.merge_methods import merge_state_dicts, registered_methods

from mergenet.merge_strategies import engine, registry
from mergenet.merge_strategies.mergekit_plugin import ensure_registered

from .conftest import random_models

MERGEKIT_METHODS = {
    "linear", "slerp", "nuslerp", "multislerp", "karcher", "task_arithmetic", "ties",
    "dare_ties", "dare_linear", "della", "della_linear", "breadcrumbs", "breadcrumbs_ties",
    "sce", "ram", "ramplus_tl", "model_stock", "nearswap", "arcee_fusion", "passthrough",
}  # fmt: skip


def test_every_mergekit_method_is_exposed():
    exposed = {registry.get(n).mergekit_method for n in registry.names()}
    assert exposed >= MERGEKIT_METHODS
    assert {"consensus", "expo", "ties", "dare_ties", "slerp", "multislerp"} <= set(
        registry.names()
    )
    assert set(registry.fast_strategies()) >= {
        "linear", "task_arithmetic", "ties", "dare_ties", "dare_linear", "consensus", "expo",
    }  # fmt: skip


def test_our_methods_are_registered_with_mergekit():
    ensure_registered()
    ensure_registered()  # idempotent
    names = {m.spec.name for m in registered_methods()}
    assert {"mergenet_consensus", "mergenet_expo"} <= names


def _k_for(strategy) -> int:
    k = max(strategy.min_deltas, 3)
    return min(k, strategy.max_deltas) if strategy.max_deltas else k


@pytest.mark.parametrize("name", registry.names())
def test_every_strategy_merges_at_defaults(name):
    s = registry.get(name)
    k = _k_for(s)
    base, _, deltas = random_models(k, seed=4)
    out = engine.merge_state_dict(name, base, deltas, [0.5] * k, seed=1)
    assert out.keys() == base.keys()
    for n, t in out.items():
        assert t.shape == base[n].shape and t.dtype == base[n].dtype
        assert torch.isfinite(t).all()
    moved = max(float((out[n] - base[n]).abs().max()) for n in out)
    assert moved > 0, f"{name} returned the base unchanged"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("breadcrumbs", {"density": 0.6, "gamma": 0.05}),
        ("breadcrumbs_ties", {"density": 0.6}),
        ("slerp", {"t": 0.3}),
        ("multislerp", {}),
        ("model_stock", {}),
        ("nuslerp", {}),
        ("sce", {"select_topk": 0.5}),
    ],
)
def test_mergekit_backed_strategies_equal_mergekit(name, params):
    s = registry.get(name)
    k = _k_for(s)
    base, fts, deltas = random_models(k, seed=5)
    weights = [0.7, 0.5, 0.9][:k]
    ours = engine.merge_state_dict(name, base, deltas, weights, params)
    p = s.mergekit_parameters(s.space.contain(params), k, weights)
    models = {f"m{j}": ft for j, ft in enumerate(fts)}
    if s.base_input:
        models = {"base": base, **models}
    theirs = merge_state_dicts(
        models, s.mergekit_method, parameters=p, base="base" if s.base_input else None
    )
    assert max(float((ours[n] - theirs[n]).abs().max()) for n in ours) <= 1e-6


def test_wrong_delta_count_is_a_clear_error():
    base, _, deltas = random_models(2, seed=0)
    with pytest.raises(ValueError, match="exactly 1"):
        engine.merge_state_dict("slerp", base, deltas)
    with pytest.raises(ValueError, match="at least 2"):
        engine.merge_state_dict("model_stock", base, deltas[:1])
