"""A merge candidate served in slices: each server peer builds and holds only its blocks.

The candidate (task arithmetic of two contributors' deltas on the world's base) is split
over two server peers under a prefix unique to it, on the session swarm's DHT beside the
base model's servers; the client holds only embeddings, norm and head. Scores through the
slices equal the whole candidate built locally.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mergenet.deltas.models import ModelSource
from mergenet.merge_strategies.recipe import Contribution, Recipe, build
from mergenet.petals import procs
from mergenet.petals.candidates import candidate_prefix, serve_candidate
from mergenet.petals.client import PetalsScorer
from mergenet.petals.swarm import split_blocks
from mergenet.petals.views import block_names, client_names, num_blocks
from mergenet.protocol.hashes import sha256_file


def _names(folder: Path) -> set[str]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return set(f.keys())


@pytest.fixture(scope="module")
def recipe(world) -> Recipe:
    return Recipe(
        parent=ModelSource(world.base_dir).sha256(),
        strategy="task_arithmetic",
        contributions=[
            Contribution(sha256=sha256_file(world.delta_path(n)), path=str(world.delta_path(n)))
            for n in ("alice", "bob")
        ],
    )


@pytest.fixture(scope="module")
def candidate(recipe, world, swarm, tmp_path_factory):
    """The candidate's two server peers (+ client view) on the session swarm's DHT."""
    state, _ = swarm
    work = tmp_path_factory.mktemp("candidate")
    ranges = split_blocks(num_blocks(world.base_dir), 2)
    client, peers = serve_candidate(recipe, world.base_dir, ranges, state.initial_peers, work)
    try:
        yield client, peers
    finally:
        for p in peers:
            procs.stop_group(p.pid)
        assert not [p.pid for p in peers if procs.group_alive(p.pid)]


def test_no_peer_holds_the_whole_candidate(candidate, recipe, world) -> None:
    client, peers = candidate
    names = ModelSource(world.base_dir).names()
    held = {p.blocks: _names(Path(p.model_dir)) for p in peers}
    assert [p.prefix for p in peers] == [candidate_prefix(recipe)] * 2
    for blocks, mine in held.items():
        assert mine == set(block_names(names, *blocks))
    assert _names(client) == set(client_names(names))
    slices = [*held.values(), _names(client)]
    assert set().union(*slices) == set(names)
    assert sum(map(len, slices)) == len(names), "the slices do not overlap"


def test_the_slices_are_exactly_the_whole_merge(candidate, recipe, world) -> None:
    client, peers = candidate
    whole = build(recipe, ModelSource(world.base_dir), check_parent=False)
    base = ModelSource(world.base_dir)
    changed = 0
    for folder in [client, *(Path(p.model_dir) for p in peers)]:
        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            for name in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                assert torch.equal(f.get_tensor(name), whole[name]), name
                changed += not torch.equal(whole[name], base.get(name))
    assert changed > 0, "the candidate differs from its parent"


def test_the_candidate_scores_through_its_slices_as_the_whole_model_does(
    candidate, recipe, world, tokenizer, swarm, tmp_path
) -> None:
    from transformers import AutoModelForCausalLM

    from mergenet.evaluator.encoding import encode_completions

    client, _ = candidate
    state, _ = swarm
    local = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype=torch.float32).eval()
    base_local = AutoModelForCausalLM.from_pretrained(world.base_dir, dtype=torch.float32).eval()
    local.load_state_dict(build(recipe, ModelSource(world.base_dir), check_parent=False))
    rows = [ids for ids, _ in encode_completions(tokenizer, world.items("dev")[:8])]
    with PetalsScorer(
        client, state.initial_peers, candidate_prefix(recipe), tmp_path / "w.log"
    ) as scorer:
        remote = scorer.forward(rows)
    gap, moved = 0.0, 0.0
    for ids, got in zip(rows, remote, strict=True):
        with torch.no_grad():
            want = local(torch.tensor([ids])).logits[0]
            parent = base_local(torch.tensor([ids])).logits[0]
        gap = max(gap, float((got - want).abs().max()))
        moved = max(moved, float((want - parent).abs().max()))
    print(f"\ncandidate via slices vs whole local: max abs logit diff {gap:.2e}")
    assert gap <= 1e-4
    assert moved > 1e-2, "the merge moved the logits, so the swarm served the candidate"
