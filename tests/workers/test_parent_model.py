"""The evaluation worker merges candidates into its parent model's own tensors (issue 20, item 2).

What must not change: the candidate's tensors, ‖θ_f − θ_b‖/‖θ_b‖ and the scores equal the old
way (``build`` a whole merged state dict, load it, score, load a dense parent copy back) bit for
bit. What must hold: after every task — finished, failed mid-merge, failed mid-score — the model
is its parent again, and a parent that could not be restored is loaded afresh, never scored on.
Tiny random checkpoints of three families (Llama; Gemma-2, whose head is tied to the embedding;
GPT-NeoX, whose head is ``embed_out`` in the file) with a tokenizer trained the world's way:
nothing here needs the built world (~15 s).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from mergenet.deltas.models import ModelSource
from mergenet.deltas.pread import PreadTensors
from mergenet.evaluator.items import Item
from mergenet.evaluator.sampling import sample_for_scoring
from mergenet.evaluator.score import ScoreError, relative_distance_between
from mergenet.evaluator.scoring import evaluate_items
from mergenet.merge_strategies.checkpoint_names import checkpoint_state, load_checkpoint_state
from mergenet.merge_strategies.recipe import Recipe, build
from mergenet.protocol.evaluation import EvalTask, SampleSpec, WorkerEnv
from mergenet.protocol.hashes import sha256_file
from mergenet.workers import evaluate
from mergenet.workers.parent_model import ParentModel

PARENT = "0" * 64
FAMILIES: dict[str, dict[str, Any]] = {
    "llama": {"model_type": "llama", "num_key_value_heads": 2},
    "gemma2": {
        "model_type": "gemma2",
        "num_key_value_heads": 2,
        "head_dim": 8,
        "query_pre_attn_scalar": 8,
        "sliding_window": 4096,
    },
    "gpt_neox": {"model_type": "gpt_neox"},
}
STRATEGIES = ("task_arithmetic", "ties", "dare_ties")


def _items(split: str, n: int = 6) -> list[Item]:
    from mergenet.ecosystem.rows import draw_items
    from mergenet.ecosystem.tasks import TASKS

    return [
        it
        for t in ("add", "reverse", "successor")
        for it in draw_items(TASKS[t], n=n, seed=3, split=split)
    ]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mergenet.ecosystem.tokenizer import save_tokenizer, train_tokenizer
    from mergenet.evaluator.items import row_text

    texts = [row_text(it.completion_row()) for it in _items("train", 40)]
    return save_tokenizer(train_tokenizer(texts, vocab_size=320), tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def store(request: Any, tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder: the family's parent as version PARENT, two dense deltas (one of them
    non-finite in its last tensor, so its merge fails after most tensors were written), and a
    dev row set beside it."""
    from transformers import AutoConfig, AutoModelForCausalLM

    spec = dict(FAMILIES[request.param])
    kind = spec.pop("model_type")
    config = AutoConfig.for_model(
        kind,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=256,
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **spec,
    )
    root = tmp_path_factory.mktemp(f"store-{request.param}")
    folder = root / "versions" / PARENT
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    specs = ModelSource(folder).specs()
    for label, seed in (("a", 1), ("b", 2)):
        g = torch.Generator().manual_seed(seed)
        delta = {n: torch.randn(s.shape, generator=g) * 0.05 for n, s in specs.items()}
        _put_delta(root, label, delta)
    bad = {n: torch.full(s.shape, 0.01) for n, s in specs.items()}
    bad[list(specs)[-1]][0] = float("nan")  # the merge fails after the tensors before it
    _put_delta(root, "bad", bad)
    rows = root / "dev.jsonl"
    rows.write_text("".join(json.dumps(it.dharma_row()) + "\n" for it in _items("dev")))
    return root


def _put_delta(root: Path, label: str, delta: dict[str, torch.Tensor]) -> None:
    tmp = root / f"{label}.safetensors"
    save_file(delta, str(tmp))
    sha = sha256_file(tmp)
    (root / "deltas" / sha[:2]).mkdir(parents=True, exist_ok=True)
    tmp.rename(root / "deltas" / sha[:2] / f"{sha}.safetensors")
    (root / f"{label}.sha").write_text(sha)


def _sha(store: Path, label: str) -> str:
    return (store / f"{label}.sha").read_text()


def _recipe(store: Path, strategy: str, *labels: str) -> Recipe:
    shas = [{"sha256": _sha(store, x), "weight": 0.7} for x in labels]
    params = {"density": 0.5} if strategy != "task_arithmetic" else {}
    return Recipe(parent=PARENT, strategy=strategy, params=params, contributions=shas, seed=5)


def _resolve(store: Path) -> Any:
    from mergenet.protocol.artifacts import ArtifactLayout

    return ArtifactLayout(store).delta_path


def _snapshot(parent: ParentModel) -> dict[str, torch.Tensor]:
    return {n: t.clone() for n, t in parent.tensors.items()}


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_merge_in_place_equals_the_built_state_dict(store: Path, strategy: str) -> None:
    """Inside the block every tensor equals ``build``'s (the old worker's merge) and the
    distance equals ``relative_distance_between``; after it the model is the parent again."""
    parent = ParentModel(store / "versions" / PARENT)
    assert parent.kept == {}  # the file reproduces every tensor the model loaded
    before = _snapshot(parent)
    _assert_same(before, checkpoint_state(parent.model))
    recipe = _recipe(store, strategy, "a", "b")
    built = build(recipe, before, _resolve(store), check_parent=False)
    with parent.candidate(recipe, _resolve(store)) as distance:
        _assert_same(_snapshot(parent), built)
        assert distance == relative_distance_between(built, before)
        assert distance > 0
    _assert_same(_snapshot(parent), before)


def test_a_task_that_fails_mid_merge_or_mid_score_leaves_the_parent(store: Path) -> None:
    parent = ParentModel(store / "versions" / PARENT)
    before = _snapshot(parent)
    restored: list[list[str]] = []
    restore = parent.restore
    parent.restore = lambda names: (restored.append(list(names)), restore(names))[1]  # type: ignore[method-assign]
    with (
        pytest.raises(ScoreError, match="non-finite"),
        parent.candidate(_recipe(store, "task_arithmetic", "bad"), _resolve(store)),
    ):
        pass
    assert restored and len(restored[0]) >= 1  # tensors had been written when the merge failed
    _assert_same(_snapshot(parent), before)
    with (
        pytest.raises(RuntimeError, match="scorer died"),
        parent.candidate(_recipe(store, "ties", "a"), _resolve(store)),
    ):
        assert not torch.equal(next(iter(parent.tensors.values())), next(iter(before.values())))
        raise RuntimeError("scorer died")
    _assert_same(_snapshot(parent), before)
    assert not parent.poisoned


def _old_worker(store: Path, recipe: Recipe, sample: SampleSpec) -> tuple[Any, Any, float]:
    """The worker before this change: a dense parent copy, a whole merged state dict (on
    the worker's one thread: a float64 dot product sums in another order on two)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mergenet.protocol.jsonl import read_jsonl

    torch.set_num_threads(WorkerEnv().torch_threads)

    folder = store / "versions" / PARENT
    model = AutoModelForCausalLM.from_pretrained(folder, dtype="float32").eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    s = sample_for_scoring(read_jsonl(store / "dev.jsonl"), sample.n, sample.seed)
    items = [Item.from_dharma_row(r) for rows in s.rows.values() for r in rows]
    loss = [Item.from_dharma_row(r) for rows in s.loss_rows.values() for r in rows]
    with torch.no_grad():
        state = checkpoint_state(model)
        parent_result = evaluate_items(model, tokenizer, items, loss).to_dict()
        merged = build(recipe, state, _resolve(store), check_parent=False)
        distance = relative_distance_between(merged, state)
        load_checkpoint_state(model, merged)
        result = evaluate_items(model, tokenizer, items, loss).to_dict()
    return result, parent_result, distance


def test_the_worker_scores_as_before_and_a_failed_task_poisons_nothing(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scores and distance equal the old worker's exactly — also right after a task that failed
    mid-merge, and after one whose restore failed (the parent is then loaded again)."""
    env = WorkerEnv(store_root=str(store), row_sets={"dev": str(store / "dev.jsonl")})
    sample = SampleSpec("dev", 2, 11)
    recipe = _recipe(store, "dare_ties", "a", "b")
    expected = _old_worker(store, recipe, sample)

    def run(key: str, r: Recipe) -> Any:
        return evaluate.run_task_here(env, EvalTask(key, r.model_dump(), sample))

    failed = run("1", _recipe(store, "task_arithmetic", "bad"))
    assert failed.error is not None and "non-finite" in failed.error
    good = run("2", recipe)
    assert good.error is None, good.error
    assert (good.result, good.parent_result, good.relative_distance) == expected

    assert evaluate._WORKER is not None
    first = evaluate._WORKER.parent(PARENT)

    def broken(name: str, out: torch.Tensor) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(first.file, "read_into", broken)
    lost = run("3", recipe)
    assert lost.error is not None and "disk gone" in lost.error
    assert first.poisoned
    again = run("4", recipe)
    assert evaluate._WORKER.parent(PARENT) is not first
    assert (again.result, again.parent_result, again.relative_distance) == expected


def test_pread_reads_what_safetensors_maps(tmp_path: Path) -> None:
    """Fresh reads, reads into a tensor (same dtype: in place; bfloat16 file: cast) and a
    model sharded over two files all give safetensors' own tensors."""
    from safetensors.torch import load_file

    g = torch.Generator().manual_seed(0)
    one = {"a": torch.randn(3, 5, generator=g), "b": torch.arange(7), "c": torch.zeros(0)}
    two = {"d": torch.randn(4, generator=g).to(torch.bfloat16)}
    save_file(one, str(tmp_path / "m-1.safetensors"))
    save_file(two, str(tmp_path / "m-2.safetensors"))
    with PreadTensors([tmp_path / "m-1.safetensors", tmp_path / "m-2.safetensors"]) as f:
        stored = {
            **load_file(tmp_path / "m-1.safetensors"),
            **load_file(tmp_path / "m-2.safetensors"),
        }
        assert sorted(f.names()) == sorted(stored)
        for name, t in stored.items():
            assert torch.equal(f.read(name), t) and f.read(name).dtype == t.dtype
        into = torch.empty(3, 5)
        f.read_into("a", into)
        assert torch.equal(into, one["a"])
        cast = torch.empty(4)
        f.read_into("d", cast)
        assert torch.equal(cast, two["d"].float())
