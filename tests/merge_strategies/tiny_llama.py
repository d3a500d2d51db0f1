"""Tiny random Llama checkpoints (HF folders) and their deltas, built locally for tests."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_config(**overrides):
    from transformers import LlamaConfig

    cfg = dict(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    cfg.update(overrides)
    return LlamaConfig(**cfg)


def save_llama(
    state: dict[str, torch.Tensor] | None, folder: Path, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Save a tiny Llama (random init from ``seed`` unless ``state`` is given) as an HF folder."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_config())
    if state is not None:
        model.load_state_dict(state)
    model.save_pretrained(folder, safe_serialization=True)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_world(root: Path, k: int, seed: int = 0, scale: float = 0.02):
    """A base folder and k fine-tuned folders; returns (base_dir, [ft_dirs], base_state)."""
    base_dir = root / "base"
    base = save_llama(None, base_dir, seed)
    g = torch.Generator().manual_seed(seed + 1)
    fts = []
    for j in range(k):
        state = {
            n: t + scale * torch.randn(t.shape, generator=g) * t.std().clamp(min=1e-3)
            for n, t in base.items()
        }
        d = root / f"ft{j}"
        save_llama(state, d)
        fts.append(d)
    return base_dir, fts, base
