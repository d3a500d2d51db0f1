"""Pad-free packing: a packed forward pass equals one forward pass per row."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from mergenet.evaluator.packing import block_causal_mask, chunk_stream, pack_rows, to_tensors
from mergenet.evaluator.scoring import score_sequences


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=97,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(cfg).eval()


def _rows(seed: int, n: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randint(0, 97, (int(torch.randint(3, 40, (1,), generator=g)),), generator=g).tolist()
        for _ in range(n)
    ]


def test_pack_rows_keeps_whole_rows_in_order_and_restarts_positions() -> None:
    rows = _rows(1, 30)
    packs = pack_rows(rows, max_tokens=64)
    seen = []
    for p in packs:
        assert len(p.input_ids) <= 64 or len(p.spans) == 1
        for key, (s, e) in zip(p.keys, p.spans, strict=True):
            assert p.input_ids[s:e] == rows[key]
            assert p.position_ids[s:e] == list(range(e - s))
            seen.append(key)
    assert seen == list(range(30))


def test_a_row_longer_than_the_budget_gets_its_own_sequence() -> None:
    packs = pack_rows([[1] * 5, [2] * 100, [3] * 5], max_tokens=50)
    assert [len(p.input_ids) for p in packs] == [5, 100, 5]


def test_chunk_stream_makes_full_chunks_and_masks_loss() -> None:
    rows = [(list(range(10, 10 + n)), 3) for n in (7, 9, 12, 5, 20)]
    chunks = list(chunk_stream(iter(rows), seq_len=16))
    assert all(len(c.input_ids) == 16 for c in chunks)
    flat = [t for c in chunks for t in c.input_ids]
    assert flat == [t for r, _ in rows for t in r][: len(flat)]
    first = chunks[0]
    # row 0 occupies 0..7: trained from its 4th token on (loss_start=3), never its first
    assert first.loss_mask[:7] == [False, False, False, True, True, True, True]
    # a segment's first token is never trained, even when it continues a cut row
    for c in chunks:
        for s, _ in c.spans:
            assert c.loss_mask[s] is False


def test_mask_is_block_diagonal_and_causal() -> None:
    pack = pack_rows([[1, 2], [3, 4, 5]], max_tokens=10)[0]
    m = block_causal_mask([pack])[0, 0]
    expected = torch.tensor(
        [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0], [0, 0, 1, 1, 1]],
        dtype=torch.bool,
    )
    assert torch.equal(m, expected)


@torch.no_grad()
def test_packed_logits_equal_one_row_at_a_time(model) -> None:
    rows = _rows(2, 12)
    pack = pack_rows(rows, max_tokens=10_000)[0]
    logits = model(**to_tensors([pack])).logits[0]
    for key, (s, e) in zip(pack.keys, pack.spans, strict=True):
        single = model(input_ids=torch.tensor([rows[key]])).logits[0]
        assert (single - logits[s:e]).abs().max().item() <= 1e-5


@torch.no_grad()
def test_packed_scores_equal_unpacked_scores(model) -> None:
    rows = _rows(3, 25)
    seqs = [(r, len(r) // 2) for r in rows]
    packed = score_sequences(model, seqs, max_tokens=256)
    unpacked = score_sequences(model, seqs, max_tokens=1)  # every row alone
    for a, b in zip(packed, unpacked, strict=True):
        assert a.n_tokens == b.n_tokens and a.n_answer_tokens == b.n_answer_tokens
        assert abs(a.total_logprob - b.total_logprob) <= 1e-5 * max(1.0, abs(b.total_logprob))
        assert abs(a.answer_logprob - b.answer_logprob) <= 1e-5 * max(1.0, abs(b.answer_logprob))


@torch.no_grad()
def test_scores_match_a_plain_transformers_loop(model) -> None:
    """Independent reference: log_softmax over an unpacked forward, summed by hand."""
    rows = _rows(4, 10)
    seqs = [(r, 2) for r in rows]
    ours = score_sequences(model, seqs)
    for (ids, start), got in zip(seqs, ours, strict=True):
        logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
        ref = sum(float(logp[t - 1, ids[t]]) for t in range(1, len(ids)))
        ref_answer = sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))
        assert abs(got.total_logprob - ref) < 1e-4
        assert abs(got.answer_logprob - ref_answer) < 1e-4


def test_weighted_loss_at_zero_prompt_weight_is_transformers_completion_loss(model) -> None:
    from mergenet.ecosystem.training import weighted_loss

    rows = [(r, len(r) // 2) for r in _rows(3, 30)]
    batch = [next(c) for c in [chunk_stream(iter(rows), seq_len=48)] for _ in range(3)]
    inputs = to_tensors(batch)
    labels = inputs["input_ids"].clone()
    labels[~torch.tensor([p.loss_mask for p in batch])] = -100
    with torch.no_grad():
        out = model(**inputs, labels=labels)
        ours = weighted_loss(out.logits, inputs["input_ids"], batch, 0.0)
        with_prompt = weighted_loss(out.logits, inputs["input_ids"], batch, 0.1)
    assert ours.item() == pytest.approx(out.loss.item(), rel=1e-5)
    # prompt tokens add to the loss (normalised by the answer count, so it only grows)
    assert with_prompt.item() > ours.item()
    # ... and a row's first token, which has no context in its row, is never weighted
    for c in batch:
        for s, _ in c.spans:
            assert c.context_mask[s] is False
