"""Random small models for merge tests: a base state dict and k fine-tuned variants."""

from __future__ import annotations

import pytest
import torch

SHAPES = {
    "model.embed_tokens.weight": (97, 64),
    "model.layers.0.self_attn.q_proj.weight": (64, 64),
    "model.layers.0.mlp.up_proj.weight": (172, 64),
    "model.layers.0.input_layernorm.weight": (64,),
    "model.norm.weight": (64,),
    "lm_head.weight": (97, 64),
}


def random_models(k: int, seed: int = 0, scale: float = 0.01):
    """(base, finetuned list, deltas list); deltas are exactly ``ft − base`` in float32."""
    g = torch.Generator().manual_seed(seed)
    base = {n: torch.randn(s, generator=g) * 0.1 for n, s in SHAPES.items()}
    fts, deltas = [], []
    for _ in range(k):
        ft = {n: t + torch.randn(t.shape, generator=g) * scale for n, t in base.items()}
        fts.append(ft)
        deltas.append({n: ft[n] - base[n] for n in base})
    return base, fts, deltas


@pytest.fixture(scope="module")
def models4():
    return random_models(4, seed=1)
