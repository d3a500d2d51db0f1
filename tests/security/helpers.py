"""Builders of hostile and honest inputs for the security tests (no model world needed)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import torch


def raw_safetensors(path: Path, header: Any, data: bytes = b"") -> Path:
    """A file with exactly this header (bytes, or JSON-encoded) and data section."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + data)
    return path


def deep(n: int) -> bytes:
    """``n`` nested lists: ``[[[…]]]``."""
    return b"[" * n + b"]" * n


def tiny_llama(seed: int = 0):  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg)


def make_adapter(folder: Path, base_dir: Path, **config: Any) -> dict[str, Any]:
    """A real PEFT adapter for the tiny Llama saved at ``base_dir``; returns its config."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(base_dir)
    config = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]} | config
    peft = get_peft_model(model, LoraConfig(init_lora_weights=False, **config))
    peft.save_pretrained(folder)
    return json.loads((folder / "adapter_config.json").read_text())


def write_config(folder: Path, config: Any) -> None:
    text = config if isinstance(config, bytes) else json.dumps(config).encode()
    (folder / "adapter_config.json").write_bytes(text)
