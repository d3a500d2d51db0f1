"""Tiny random-initialised checkpoints of the families contributors fine-tune, with a tokenizer
trained the world's way (``ecosystem.tokenizer``) on rows of the world's tasks: nothing is
downloaded and nothing needs the built world. Hidden 32, 2 layers, grouped-query attention
(4 query heads, 2 key/value heads) wherever the family has it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

COMMON: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}

FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {"model_type": "llama"},
    "qwen2": {"model_type": "qwen2"},
    "qwen3": {"model_type": "qwen3", "head_dim": 8},
    "mistral": {"model_type": "mistral", "sliding_window": 4096},
    # tied embeddings and logit softcapping by default; the window is the real one (4,096):
    # a window shorter than a scorer tree (256 tokens) is not expressed by the tree's mask
    "gemma2": {
        "model_type": "gemma2",
        "head_dim": 8,
        "query_pre_attn_scalar": 8,
        "sliding_window": 4096,
    },
    # GPT-NeoX: fused query_key_value, no grouped-query attention, head saved as embed_out
    "gpt_neox": {"model_type": "gpt_neox", "num_key_value_heads": None},
}


def training_rows(n_per_task: int = 24) -> list[dict[str, str]]:
    from mergenet.ecosystem.rows import draw_items
    from mergenet.ecosystem.tasks import TASKS

    tasks = [TASKS["add"], TASKS["reverse"], TASKS["successor"]]
    return [
        it.completion_row()
        for t in tasks
        for it in draw_items(t, n=n_per_task, seed=0, split="train", distinct=False)
    ]


def build_tokenizer(folder: Path) -> Any:
    from mergenet.ecosystem.tokenizer import save_tokenizer, train_tokenizer
    from mergenet.evaluator.items import row_text

    texts = [row_text(r) for r in training_rows(60)]
    return save_tokenizer(train_tokenizer(texts, vocab_size=320), folder)


def save_parent(family: str, tokenizer: Any, folder: Path, **overrides: Any) -> Path:
    """A random ``family`` checkpoint with ``tokenizer`` as an HF folder (seed 0)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(FAMILIES[family])
    model_type = spec.pop("model_type")
    kwargs = {
        **COMMON,
        "vocab_size": len(tokenizer),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": None,
        **spec,
        **overrides,
    }
    config = AutoConfig.for_model(model_type, **{k: v for k, v in kwargs.items() if v is not None})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
