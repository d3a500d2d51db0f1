"""Prefix trees: layout invariants, and scores equal to scoring every sequence alone."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LlamaConfig, LlamaForCausalLM

from mergenet.evaluator.prefix_tree import build_trees, to_batch
from mergenet.evaluator.scoring import score_sequences

token_lists = st.lists(st.lists(st.integers(0, 5), min_size=1, max_size=8), min_size=1, max_size=12)


@given(token_lists, st.integers(1, 30))
@settings(max_examples=200, deadline=None)
def test_every_sequence_is_a_root_path_and_trees_stay_small(seqs, max_tokens) -> None:
    trees = build_trees(seqs, max_tokens=max_tokens)
    seen = set()
    for tree in trees:
        assert len(tree) <= max(max_tokens, max(len(s) for s in seqs))
        for key, path in tree.paths.items():
            seen.add(key)
            assert [tree.tokens[i] for i in path] == list(seqs[key])
            assert [tree.depths[i] for i in path] == list(range(len(path)))
            assert tree.parents[path[0]] == -1
            assert all(tree.parents[c] == p for p, c in itertools.pairwise(path))
    assert seen == set(range(len(seqs)))


@given(token_lists)
@settings(max_examples=200, deadline=None)
def test_mask_is_exactly_ancestor_or_self(seqs) -> None:
    for tree in build_trees(seqs, max_tokens=1000):
        mask = tree.attention_mask(len(tree) + 2)
        for i in range(len(tree)):
            ancestors = {i}
            p = tree.parents[i]
            while p >= 0:
                ancestors.add(p)
                p = tree.parents[p]
            assert {j for j in range(len(tree) + 2) if mask[i, j]} == ancestors
        # padding sees itself only, so no attention row is empty
        assert mask[len(tree), len(tree)] and mask[len(tree)].sum() == 1


def test_shared_prefixes_are_stored_once() -> None:
    prompt = [7, 8, 9, 10]
    seqs = [[*prompt, c, 1] for c in range(4)] + [[*prompt, 2, 1]]  # one duplicate
    (tree,) = build_trees(seqs, max_tokens=100)
    assert len(tree) == len(prompt) + 4 * 2
    assert tree.paths[2] == tree.paths[4]


def test_unshared_trees_are_plain_block_diagonal_packs() -> None:
    seqs = [[1, 2, 3], [1, 2, 4]]
    (tree,) = build_trees(seqs, max_tokens=100, share=False)
    assert tree.tokens == [1, 2, 3, 1, 2, 4]
    assert tree.depths == [0, 1, 2, 0, 1, 2]
    batch = to_batch([tree])
    assert not batch["attention_mask"][0, 0, 3, :3].any()


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    return LlamaForCausalLM(cfg).eval()


def test_tree_scores_equal_one_sequence_at_a_time(model) -> None:
    rng = random.Random(0)
    prompts = [[rng.randrange(50) for _ in range(rng.randint(3, 20))] for _ in range(12)]
    seqs = [
        (p + [rng.randrange(50) for _ in range(rng.randint(1, 5))], len(p))
        for p in prompts
        for _ in range(4)
    ] + [(p, len(p)) for p in prompts]  # letter-style rows: nothing after the prompt
    keep = [1, 2, 3, 4]
    shared = score_sequences(model, seqs, max_tokens=64, keep_last_logits=keep)
    alone = score_sequences(model, seqs, max_tokens=1, keep_last_logits=keep)
    with torch.no_grad():
        for (ids, start), a, b in zip(seqs, shared, alone, strict=True):
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
            ref = sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))
            ref_answer = sum(float(logp[t - 1, ids[t]]) for t in range(max(start, 1), len(ids)))
            for got in (a, b):
                assert got.total_logprob == pytest.approx(ref, abs=1e-4)
                assert got.answer_logprob == pytest.approx(ref_answer, abs=1e-4)
                assert got.n_tokens == len(ids) - 1
                assert got.n_answer_tokens == len(ids) - max(start, 1)
            assert torch.allclose(a.last_logits, b.last_logits, atol=1e-4)
            assert torch.allclose(
                a.last_logits, model(input_ids=torch.tensor([ids])).logits[0, -1, keep], atol=1e-4
            )


def test_empty_sequences_are_refused(model) -> None:
    with pytest.raises(ValueError, match="empty"):
        score_sequences(model, [([], 0)])


def _tree_rows(rng: random.Random, vocab: int) -> list[tuple[list[int], int]]:
    prompts = [[rng.randrange(vocab) for _ in range(rng.randint(3, 20))] for _ in range(8)]
    return [
        (p + [rng.randrange(vocab) for _ in range(rng.randint(1, 5))], len(p))
        for p in prompts
        for _ in range(4)
    ] + [(p, len(p)) for p in prompts]


def test_answers_only_reads_the_same_answers_and_no_totals(model) -> None:
    seqs = _tree_rows(random.Random(1), 50)
    full = score_sequences(model, seqs, max_tokens=64, keep_last_logits=[1, 2])
    answers = score_sequences(model, seqs, max_tokens=64, keep_last_logits=[1, 2], totals=False)
    for a, b in zip(full, answers, strict=True):
        assert b.answer_logprob == pytest.approx(a.answer_logprob, abs=1e-5)
        assert (b.n_tokens, b.n_answer_tokens) == (a.n_tokens, a.n_answer_tokens)
        assert b.total_logprob != b.total_logprob  # NaN: not computed
        assert torch.equal(a.last_logits, b.last_logits)


def test_additive_mask_is_the_boolean_one_as_0_and_the_minimum() -> None:
    trees = build_trees([[1, 2, 3], [1, 2, 4], [5, 6]], max_tokens=4)
    allowed = to_batch(trees)["attention_mask"]
    additive = to_batch(trees, additive=torch.float32)["attention_mask"]
    assert allowed.dtype == torch.bool and additive.dtype == torch.float32
    expected = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    assert torch.equal(additive, expected)


def _one_at_a_time(model, seqs) -> list[float]:
    out = []
    with torch.no_grad():
        for ids, start in seqs:
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), -1)
            out.append(sum(float(logp[t - 1, ids[t]]) for t in range(max(start, 1), len(ids))))
    return out


@pytest.mark.parametrize("variant", ["eager-llama", "gpt2"])
def test_the_float_mask_and_the_full_logits_path_score_alike(variant) -> None:
    """Eager attention gets the additive mask; a family outside ``HEAD_IS_PLAIN_PROJECTION``
    (GPT-2) takes its own forward's logits; both equal one sequence at a time."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    if variant == "gpt2":
        cfg = GPT2Config(vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=64)
        m = GPT2LMHeadModel(cfg).eval()
    else:
        cfg = LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            attn_implementation="eager",
        )
        m = LlamaForCausalLM(cfg).eval()
        assert m.config._attn_implementation == "eager"
    seqs = _tree_rows(random.Random(2), 50)
    got = [s.answer_logprob for s in score_sequences(m, seqs, max_tokens=64)]
    assert got == pytest.approx(_one_at_a_time(m, seqs), abs=1e-4)
