"""LoRA adapters expand per tensor exactly as PEFT's merge_and_unload does."""

from __future__ import annotations

import pytest
import torch

from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.lora import LoraDelta
from mergenet.deltas.models import ModelSource
from mergenet.deltas.validate import ValidationLimits, validate_lora_adapter
from mergenet.merge_strategies import engine


def _tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
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


@pytest.mark.parametrize(
    "config",
    [
        dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
        dict(
            r=4,
            lora_alpha=16,
            use_rslora=True,
            target_modules=["q_proj", "embed_tokens"],
            rank_pattern={"layers.1.self_attn.q_proj": 2},
            alpha_pattern={"q_proj": 3},
        ),
    ],
)
def test_expansion_matches_peft_merge(tmp_path, config):
    from peft import LoraConfig, get_peft_model

    model = _tiny_llama()
    base = {k: v.clone() for k, v in model.state_dict().items()}
    model.save_pretrained(tmp_path / "base")
    peft_model = get_peft_model(model, LoraConfig(init_lora_weights=False, **config))
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = peft_model.merge_and_unload().state_dict()

    lora = LoraDelta(tmp_path / "adapter")
    assert lora.names()  # something is adapted
    for name, b in base.items():
        d = lora.get(name)
        expected = merged[name] - b
        if d is None:
            assert float(expected.abs().max()) == 0
        else:
            assert float((d - expected).abs().max()) < 1e-6

    # A merge can consume the adapter directly (a task-arithmetic merge of one = base + δ).
    out = engine.merge_state_dict("task_arithmetic", base, [tmp_path / "adapter"], [1.0])
    assert max(float((out[n] - merged[n]).abs().max()) for n in base) < 1e-6
    limits = ValidationLimits(max_relative_norm=100.0)  # random (untrained) LoRA factors
    report = validate_lora_adapter(tmp_path / "adapter", ModelSource(tmp_path / "base"), limits)
    assert report.relative_norm > 0


def test_bad_adapters_are_rejected(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(DeltaValidationError, match=r"adapter_config\.json"):
        LoraDelta(tmp_path / "a")
