"""The fine-tuning penalties do what they claim, on a tiny random Llama (no world needed).

* λ = 0 (or no regulariser) is today's training, bit for bit.
* A large L2-to-parent λ keeps the delta's norm a small fraction of the plain one.
* A large KL-to-parent λ keeps the model's next-token distribution near the parent's.
* Through ``node finetune``: the options reach the loop, the default is the measured L2 λ
  (``DEFAULT_L2``, full fine-tuning only), bad values are refused, and under
  LoRA the KL parent is the model with its adapter switched off.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch

from mergenet.ecosystem.regularisers import KLToParent, L2ToParent, combine, frozen_parent
from mergenet.ecosystem.training import TrainConfig, sample_rows, train_lm
from mergenet.evaluator.packing import chunk_stream, to_tensors

pytestmark = pytest.mark.timeout(120)

CFG = TrainConfig(steps=12, batch_size=4, seq_len=64, lr=3e-3, warmup=2, prompt_weight=0.1)


def _model() -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def _rows() -> list[tuple[list[int], int]]:
    """Rows of a learnable toy task: a prompt of random tokens, the answer its first token x5."""
    rng = random.Random(0)
    rows = []
    for _ in range(200):
        prompt = [rng.randrange(3, 64) for _ in range(rng.randrange(4, 10))]
        rows.append((prompt + [prompt[0]] * 5, len(prompt)))
    return rows


def _train(regulariser: Any = None, build: Any = None) -> tuple[Any, dict[str, torch.Tensor]]:
    model = _model()
    parent = {n: t.clone() for n, t in model.state_dict().items()}
    reg = build(model) if build else regulariser
    train_lm(model, sample_rows(_rows(), 0), CFG, regulariser=reg)
    return model, parent


def _delta_norm(model: Any, parent: dict[str, torch.Tensor]) -> float:
    sq = sum(((t - parent[n]) ** 2).sum() for n, t in model.state_dict().items())
    return float(torch.as_tensor(sq).sqrt())


def _batch(seed: int, n: int) -> list[Any]:
    chunks = chunk_stream(sample_rows(_rows(), seed), seq_len=64)
    return [next(chunks) for _ in range(n)]


def _kl_to(model: Any, parent_model: Any) -> float:
    batch = _batch(7, 8)
    inputs = to_tensors(batch)
    with torch.no_grad():
        ref = parent_model(**inputs).logits.log_softmax(-1)
        own = model(**inputs).logits.log_softmax(-1)
    return float((ref.exp() * (ref - own)).sum(-1).mean())


def test_lambda_zero_is_todays_training_bit_for_bit() -> None:
    plain, _ = _train()
    for build in (lambda m: L2ToParent(m, 0.0), lambda m: KLToParent(frozen_parent(m), 0.0)):
        zero, _ = _train(build=build)
        for (n, a), b in zip(plain.state_dict().items(), zero.state_dict().values(), strict=True):
            assert torch.equal(a, b), n


def test_the_plain_run_moves_the_weights() -> None:
    """The baseline the two tests below compare against really trains (loss falls)."""
    model = _model()
    losses = train_lm(model, sample_rows(_rows(), 0), CFG)
    assert losses[-1] < losses[0] - 0.3


def test_a_large_l2_lambda_keeps_the_delta_small() -> None:
    plain, parent = _train()
    held, _ = _train(build=lambda m: L2ToParent(m, 100.0))
    plain_norm, held_norm = _delta_norm(plain, parent), _delta_norm(held, parent)
    assert plain_norm > 0.1
    assert held_norm < 0.25 * plain_norm, (held_norm, plain_norm)


def test_a_large_kl_lambda_keeps_the_predictions_near_the_parent() -> None:
    plain, _ = _train()
    held, _ = _train(build=lambda m: KLToParent(frozen_parent(m), 100.0))
    base = _model()
    assert _kl_to(held, base) < 0.25 * _kl_to(plain, base)


def test_l2_penalty_value_and_combination() -> None:
    model = _model()
    l2 = L2ToParent(model, 2.0)
    with torch.no_grad():
        model.model.norm.weight.add_(0.5)  # 32 weights moved by 0.5 → Σ‖Δ‖² = 8
    assert combine([]) is None
    assert float(l2(model, {}, torch.zeros(1), []).detach()) == pytest.approx(16.0)
    both = combine([l2, L2ToParent(model, 1.0)])
    assert both is not None
    assert float(both(model, {}, torch.zeros(1), []).detach()) == pytest.approx(
        16.0
    )  # 2nd anchored now


# --------------------------------------------------------------- through node finetune


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.architectures.families import build_tokenizer, save_parent

    folder = tmp_path_factory.mktemp("parent")
    return save_parent("llama", build_tokenizer(folder / "tok"), folder / "model")


def _finetune(parent: Path, out: Path, **kw: Any) -> Any:
    from safetensors.torch import load_file
    from tests.architectures.families import training_rows

    from mergenet.node.data import TrainRow
    from mergenet.node.finetune import FinetuneConfig, finetune

    rows = [TrainRow(**r) for r in training_rows()]
    cfg = FinetuneConfig(steps=6, batch_size=4, seq_len=128, lr=3e-3, **kw)
    result = finetune(parent, "ab" * 32, rows, out, cfg)
    return result if kw.get("lora") else load_file(result.artifact)


def test_finetune_options_reach_the_loop(parent: Path, tmp_path: Path) -> None:
    plain = _finetune(parent, tmp_path / "plain", l2_to_parent=0.0)
    l2 = _finetune(parent, tmp_path / "l2", l2_to_parent=100.0)
    kl = _finetune(parent, tmp_path / "kl", kl_to_parent=100.0)

    def norm(d: dict[str, torch.Tensor]) -> float:
        return float(sum(t.float().pow(2).sum() for t in d.values()))

    assert norm(l2) < 0.25 * norm(plain)
    assert norm(kl) < norm(plain)


def test_the_default_is_the_measured_l2_for_full_fine_tuning(parent: Path, tmp_path: Path) -> None:
    import json

    from mergenet.node.finetune import DEFAULT_L2, FinetuneConfig

    assert FinetuneConfig().l2_penalty == DEFAULT_L2 > 0
    assert FinetuneConfig(lora=True).l2_penalty == 0.0  # not measured under LoRA
    assert FinetuneConfig(lora=True, l2_to_parent=0.5).l2_penalty == 0.5
    default = _finetune(parent, tmp_path / "default")
    explicit = _finetune(parent, tmp_path / "explicit", l2_to_parent=DEFAULT_L2)
    off = _finetune(parent, tmp_path / "off", l2_to_parent=0.0)
    assert all(torch.equal(default[n], explicit[n]) for n in default)
    assert not all(torch.equal(default[n], off[n]) for n in default)
    used = json.loads((tmp_path / "default" / "contribution.json").read_text())["config"]
    assert used["l2_to_parent"] == DEFAULT_L2


def test_under_lora_the_kl_parent_is_the_model_without_its_adapter() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(_model(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    reg = KLToParent(frozen_parent(model), 1.0)
    train_lm(model, sample_rows(_rows(), 0), CFG, regulariser=reg)
    batch = _batch(3, 2)
    inputs = to_tensors(batch)
    with torch.no_grad():
        parent, tuned = _model()(**inputs).logits, model(**inputs).logits
        assert torch.allclose(reg.parent_logits(inputs), parent, atol=1e-5)
    assert not torch.allclose(tuned, parent, atol=1e-3)  # the adapter did train


def test_finetune_runs_lora_with_kl(parent: Path, tmp_path: Path) -> None:
    result = _finetune(parent, tmp_path / "lora", lora=True, kl_to_parent=1.0)
    assert result.kind == "lora" and (result.artifact / "adapter_model.safetensors").exists()


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_penalties_are_refused(parent: Path, tmp_path: Path, bad: float) -> None:
    from mergenet.node.errors import NodeError

    with pytest.raises(NodeError, match="finite number"):
        _finetune(parent, tmp_path / "bad", l2_to_parent=bad)
    assert not (tmp_path / "bad").exists()
