"""Each family contributors fine-tune, through the path a contribution takes, in process.

Per family (tiny random configs, ``families.py``): ``node finetune`` full and LoRA → the
upload validation the coordinator runs (``validate_delta_file`` / ``validate_lora_adapter``)
→ every merge strategy through ``recipe.build`` on the evaluation worker's parent state (under
the checkpoint's names, ``checkpoint_names``) → the merged weights loaded into the worker's model
and scored (``score_sequences``) → the version written as the coordinator writes it
(``build_to_dir``, the folder ``node pull`` downloads) and reloaded with ``from_pretrained``,
equal to what was scored. The same functions the coordinator and its workers call; a live
coordinator per family would cost minutes each (tests/node/test_contribute_e2e.py runs the
live path on the world's Llama). About 5 s per family on 2 cores.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from .families import FAMILIES, build_tokenizer, save_parent, training_rows

pytestmark = pytest.mark.timeout(300)

PARENT_HASH = "ab" * 32


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


def _finetune(parent: Path, out: Path, lora: bool) -> Any:
    from mergenet.node.data import TrainRow
    from mergenet.node.finetune import FinetuneConfig, finetune

    rows = [TrainRow(**r) for r in training_rows()]
    cfg = FinetuneConfig(steps=2, lora=lora, batch_size=4, seq_len=128, lr=1e-2 if lora else 1e-3)
    return finetune(parent, PARENT_HASH, rows, out, cfg)


def _sequences(tokenizer: Any) -> list[tuple[list[int], int]]:
    from mergenet.ecosystem.rows import draw_items
    from mergenet.ecosystem.tasks import TASKS
    from mergenet.evaluator.encoding import encode_completions

    items = draw_items(TASKS["add"], n=4, seed=1, split="heldout")
    return encode_completions(tokenizer, [it for it in items for _ in range(4)], [0, 1, 2, 3] * 4)


def _recipe(strategy: Any, shas: list[str]) -> Any:
    from mergenet.merge_strategies.recipe import Contribution, Recipe

    k = 2 if strategy.max_deltas is None or strategy.max_deltas >= 2 else 1
    k = max(k, strategy.min_deltas)
    return Recipe(
        parent=PARENT_HASH,
        strategy=strategy.name,
        contributions=[Contribution(sha256=s, weight=1.0) for s in shas[:k]],
    )


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_family_goes_from_finetune_to_a_version(
    family: str, tokenizer: Any, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    from mergenet.deltas.models import ModelSource
    from mergenet.deltas.validate import validate_delta_file, validate_lora_adapter
    from mergenet.evaluator.scoring import score_sequences
    from mergenet.merge_strategies import registry
    from mergenet.merge_strategies.checkpoint_names import (
        checkpoint_state,
        load_checkpoint_state,
    )
    from mergenet.merge_strategies.recipe import build, build_to_dir

    parent_dir = save_parent(family, tokenizer, tmp_path / "parent")
    parent = ModelSource(parent_dir)
    full = _finetune(parent_dir, tmp_path / "full", lora=False)
    lora = _finetune(parent_dir, tmp_path / "lora", lora=True)
    full_report = validate_delta_file(full.artifact, parent)
    lora_report = validate_lora_adapter(lora.artifact, parent)
    assert len(full_report.changed_tensors) == len(parent.names())
    attention = "query_key_value" if family == "gpt_neox" else "q_proj"
    assert any(attention in n for n in lora_report.changed_tensors), lora_report.changed_tensors

    files = {"f" * 64: full.artifact, "a" * 64: lora.artifact}
    model = AutoModelForCausalLM.from_pretrained(parent_dir, dtype=torch.float32).eval()
    parent_state = checkpoint_state(model)
    assert set(parent_state) == set(parent.names())
    seqs = _sequences(tokenizer)
    baseline = [s.total_logprob for s in score_sequences(model, seqs)]
    embed = next(n for n in parent.names() if "embed" in n and "out" not in n)
    for strategy in registry.all_strategies():
        recipe = _recipe(strategy, list(files))
        merged = build(recipe, parent_state, files.__getitem__, check_parent=False)
        assert set(merged) == set(parent_state), strategy.name
        assert all(bool(torch.isfinite(t).all()) for t in merged.values()), strategy.name
        load_checkpoint_state(model, merged)
        scores = [s.total_logprob for s in score_sequences(model, seqs)]
        assert all(map(torch.isfinite, torch.tensor(scores))), strategy.name
        if strategy.name == "task_arithmetic":
            # the embedding's delta reaches the model, tied head or not
            got = model.get_input_embeddings().weight
            assert torch.equal(got, merged[embed]) and not torch.equal(got, parent_state[embed])
            assert scores != baseline
        load_checkpoint_state(model, parent_state)

    recipe = _recipe(registry.get("ties"), list(files))
    version = build_to_dir(
        recipe, parent_dir, tmp_path / "version", files.__getitem__, check_parent=False
    )
    reloaded = AutoModelForCausalLM.from_pretrained(version, dtype=torch.float32).eval()
    load_checkpoint_state(model, build(recipe, parent_state, files.__getitem__, check_parent=False))
    ids = torch.tensor([seqs[0][0]])
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, model(ids).logits)


def _one_row_at_a_time(model: Any, seqs: list[tuple[list[int], int]]) -> list[float]:
    out = []
    with torch.no_grad():
        for ids, start in seqs:
            lp = model(torch.tensor([ids])).logits.float().log_softmax(-1)[0]
            out.append(sum(float(lp[i - 1, ids[i]]) for i in range(max(start, 1), len(ids))))
    return out


@pytest.mark.parametrize(
    "family",
    sorted(FAMILIES),
)
def test_tree_scores_equal_one_row_at_a_time(family: str, tokenizer: Any, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from mergenet.evaluator.scoring import score_sequences

    model = AutoModelForCausalLM.from_pretrained(save_parent(family, tokenizer, tmp_path)).eval()
    seqs = _sequences(tokenizer)
    tree = [s.answer_logprob for s in score_sequences(model, seqs)]
    torch.testing.assert_close(
        torch.tensor(tree), torch.tensor(_one_row_at_a_time(model, seqs)), atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_the_workers_state_dict_round_trip_keeps_the_merge(
    family: str, tokenizer: Any, tmp_path: Path
) -> None:
    """What workers/evaluate.py does, on a delta that changes every tensor by 0.01: merge under
    the checkpoint's names (GPT-NeoX's embed_out, Gemma-2's one tied tensor) and load back."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM

    from mergenet.deltas.models import ModelSource
    from mergenet.merge_strategies.checkpoint_names import checkpoint_state, load_checkpoint_state
    from mergenet.merge_strategies.engine import merge_state_dict

    parent_dir = save_parent(family, tokenizer, tmp_path / "parent")
    delta = {n: torch.full(s.shape, 0.01) for n, s in ModelSource(parent_dir).specs().items()}
    save_file(delta, str(tmp_path / "delta.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(parent_dir).eval()
    state = checkpoint_state(model)
    merged = merge_state_dict("task_arithmetic", state, [tmp_path / "delta.safetensors"])
    load_checkpoint_state(model, merged)
    embed = model.get_input_embeddings().weight
    assert not torch.equal(embed, state[next(n for n in state if "embed" in n)])


def _delta_of(folder: Path, path: Path) -> Path:
    from safetensors.torch import save_file

    from mergenet.deltas.models import ModelSource

    specs = ModelSource(folder).specs()
    save_file({n: torch.full(s.shape, 1e-3) for n, s in specs.items()}, str(path))
    return path


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"num_key_value_heads": 4}, ("k_proj", "key/value heads")),
        ({"vocab_size": 400}, ("lm_head", "vocabulary of 400 tokens")),
        ({"tie_word_embeddings": True}, ("lm_head", "tie their output head differently")),
    ],
    ids=["grouped-query-heads", "vocabulary", "tied-embeddings"],
)
def test_a_delta_of_another_shape_is_a_clear_422(
    overrides: dict[str, Any], names: tuple[str, str], tokenizer: Any, tmp_path: Path
) -> None:
    """A delta made on a model whose heads, vocabulary or tying differ from the parent's is
    refused with an InvalidInput (422) that names the tensor and says what differs."""
    from mergenet.deltas.errors import DeltaValidationError
    from mergenet.deltas.models import ModelSource
    from mergenet.deltas.validate import validate_delta_file
    from mergenet.errors import InvalidInput

    parent = ModelSource(save_parent("llama", tokenizer, tmp_path / "parent"))
    other = save_parent("llama", tokenizer, tmp_path / "other", **overrides)
    with pytest.raises(DeltaValidationError) as caught:
        validate_delta_file(_delta_of(other, tmp_path / "delta.safetensors"), parent)
    assert isinstance(caught.value, InvalidInput)
    assert all(part in str(caught.value) for part in names), str(caught.value)


def test_a_lora_adapter_of_other_heads_is_a_clear_422(tokenizer: Any, tmp_path: Path) -> None:
    from mergenet.deltas.errors import DeltaValidationError
    from mergenet.deltas.models import ModelSource
    from mergenet.deltas.validate import validate_lora_adapter

    parent = ModelSource(save_parent("llama", tokenizer, tmp_path / "parent"))
    other = save_parent("llama", tokenizer, tmp_path / "other", num_key_value_heads=4)
    adapter = _finetune(other, tmp_path / "lora", lora=True).artifact
    with pytest.raises(DeltaValidationError, match=r"k_proj|v_proj"):
        validate_lora_adapter(adapter, parent)
