"""World building: deterministic from one seed, cached, resumable after an interruption."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from mergenet.ecosystem.spec import ContributorSpec, ModelSpec, WorldSpec
from mergenet.ecosystem.world import build_world

TINY = WorldSpec(
    seed=7,
    model=ModelSpec(
        vocab_size=400,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    ),
    contributors=(
        ContributorSpec("ann", ("add_small",)),
        ContributorSpec("ben", ("upper", "bits")),
    ),
    train_rows_per_task=200,
    eval_rows_per_task=8,
    heldout_rows_per_task=6,
    seq_len=128,
    batch_size=2,
    base_steps=3,
    contributor_steps=2,
)

VOLATILE = {"training.json", "manifest.json"}  # wall-clock seconds and build time


def _digest_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in VOLATILE
    }


@pytest.fixture(scope="module")
def tiny_world(tmp_path_factory):
    return build_world(TINY, tmp_path_factory.mktemp("a"))


def test_same_seed_gives_the_same_world_bit_for_bit(tiny_world, tmp_path) -> None:
    again = build_world(TINY, tmp_path)
    a, b = _digest_tree(tiny_world.root), _digest_tree(again.root)
    assert a == b
    assert any(k.endswith("model.safetensors") for k in a)
    assert any(k.endswith("delta.safetensors") for k in a)


def test_another_seed_gives_another_world(tiny_world, tmp_path) -> None:
    other = build_world(WorldSpec(**{**TINY.__dict__, "seed": 8}), tmp_path)
    assert other.root.name != tiny_world.root.name
    a = (tiny_world.base_dir / "model.safetensors").read_bytes()
    assert a != (other.base_dir / "model.safetensors").read_bytes()


def test_second_build_is_instant(tiny_world) -> None:
    started = time.perf_counter()
    again = build_world(TINY, tiny_world.root.parent)
    assert again.root == tiny_world.root
    assert time.perf_counter() - started < 1.0


def test_interrupted_build_resumes_at_the_first_unfinished_stage(tmp_path) -> None:
    world = build_world(TINY, tmp_path)
    base_mtime = (world.base_dir / "model.safetensors").stat().st_mtime_ns
    monolith = (world.monolith_dir / "model.safetensors").read_bytes()
    # As if the process died while training the monolith: no manifest, a half-written stage.
    (world.root / "manifest.json").unlink()
    for p in sorted(world.monolith_dir.rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    world.monolith_dir.rmdir()
    half = world.root / ".monolith.tmp"
    half.mkdir()
    (half / "junk").write_text("half-written")
    rebuilt = build_world(TINY, tmp_path)
    assert (rebuilt.base_dir / "model.safetensors").stat().st_mtime_ns == base_mtime
    assert (rebuilt.monolith_dir / "model.safetensors").read_bytes() == monolith
    assert not half.exists()


def test_world_layout(tiny_world) -> None:
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_world.base_dir)
    AutoModelForCausalLM.from_pretrained(tiny_world.contributor_dir("ann"))
    with (
        safe_open(tiny_world.base_dir / "model.safetensors", "pt") as base,
        safe_open(tiny_world.delta_path("ben"), "pt") as delta,
    ):
        assert set(base.keys()) == set(delta.keys())
    heldout = tiny_world.items("heldout")
    assert {it.subject for it in heldout} == {"add_small", "upper", "bits"}
    assert len(heldout) == 3 * TINY.heldout_rows_per_task
    assert len(tiny_world.items("dev")) == 3 * TINY.eval_rows_per_task
    assert tiny_world.dharma_path("heldout").read_text().count("\n") == len(heldout)
    assert tiny_world.contributor_data("ben").exists()
