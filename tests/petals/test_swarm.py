"""A real swarm on loopback: the CLI, and scoring through Petals against local transformers 5.

Tolerance: log-likelihoods agree within 1e-5 nats per scored token (a row of n tokens within
n·1e-5) and logits within 1e-4. Measured here on the world's base: at most ~2e-6 nats per
token (6e-5 on a 31-token row) and ~7e-6 on logits — float32 rounding of the same size as
between the local packed and unpacked forwards (3e-5 on a row).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from mergenet.petals import procs
from mergenet.petals.client import PetalsRemoteLM, ScorerError
from mergenet.petals.swarm import start_dht
from mergenet.petals.views import num_blocks

LOGIT_TOL = 1e-4
PER_TOKEN_TOL = 1e-5
ROWS_PER_TASK = 3


@pytest.fixture(scope="module")
def local_model(model_dir: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def items(world):
    """A few dev items of every task."""
    by_task: dict[str, list] = {}
    for it in world.items("dev"):
        by_task.setdefault(it.subject, []).append(it)
    return [it for task in sorted(by_task) for it in by_task[task][:ROWS_PER_TASK]]


def test_up_starts_a_bootstrap_peer_and_two_servers_splitting_the_blocks(
    swarm, cli, model_dir: Path
) -> None:
    _, state_dir = swarm
    out = cli("petals", "status", "--state-dir", str(state_dir))
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert [p["role"] for p in state["peers"]] == ["dht", "server", "server"]
    n = num_blocks(model_dir)
    half = (n + 1) // 2
    assert [p["blocks"] for p in state["peers"][1:]] == [[0, half], [half, n]]
    assert all(p["alive"] for p in state["peers"])
    assert all(p["maddr"].startswith("/ip4/127.0.0.1/tcp/") for p in state["peers"])
    assert {p["prefix"] for p in state["peers"][1:]} == {state["prefix"]} == {"core"}


def test_a_second_up_with_the_same_name_is_refused(swarm, cli, model_dir: Path) -> None:
    _, state_dir = swarm
    out = cli("petals", "up", "--model", str(model_dir), "--state-dir", str(state_dir))
    assert out.returncode == 1
    assert "already up" in out.stderr


def test_petals_logits_equal_local_logits(scorer, local_model, tokenizer, items) -> None:
    from mergenet.evaluator.encoding import encode_texts

    rows = encode_texts(tokenizer, [it.question for it in items[:6]])
    remote = scorer.forward(rows)
    diffs = []
    for ids, got in zip(rows, remote, strict=True):
        with torch.no_grad():
            want = local_model(torch.tensor([ids])).logits[0]
        assert got.shape == want.shape
        diffs.append(float((got - want).abs().max()))
    print(f"\nlogits: max abs diff local vs Petals {max(diffs):.2e} over {len(rows)} rows")
    assert max(diffs) <= LOGIT_TOL


def test_petals_scores_equal_local_scores(scorer, local_model, tokenizer, items) -> None:
    """The evaluator's own ``evaluate_items``/``score_sequences``, given a remote model."""
    from mergenet.evaluator.encoding import encode_completions
    from mergenet.evaluator.scoring import evaluate_items, score_sequences

    remote_model = PetalsRemoteLM(scorer)
    seqs = encode_completions(tokenizer, items)
    local_rows = score_sequences(local_model, seqs, max_tokens=512)
    calls_before = scorer.stats.calls
    remote_rows = score_sequences(remote_model, seqs, max_tokens=512)
    assert scorer.stats.calls > calls_before, "the rows must go through the swarm"
    assert [r.n_tokens for r in local_rows] == [r.n_tokens for r in remote_rows]
    gaps = [
        max(abs(a.total_logprob - b.total_logprob), abs(a.answer_logprob - b.answer_logprob))
        for a, b in zip(local_rows, remote_rows, strict=True)
    ]
    per_token = [g / a.n_tokens for g, a in zip(gaps, local_rows, strict=True)]
    print(
        f"\nlog-likelihood: max abs diff {max(gaps):.2e} nats per row, "
        f"{max(per_token):.2e} per token, over {len(seqs)} rows"
    )
    assert max(per_token) <= PER_TOKEN_TOL

    local = evaluate_items(local_model, tokenizer, items)
    remote = evaluate_items(remote_model, tokenizer, items)
    assert set(local.tasks) == set(remote.tasks) and len(local.tasks) > 1
    for name, a in local.tasks.items():
        b = remote.tasks[name]
        assert (a.n_rows, a.acc_letter, a.acc_choice) == (b.n_rows, b.acc_letter, b.acc_choice)
        assert abs(a.answer_loss - b.answer_loss) <= PER_TOKEN_TOL  # a mean per-token NLL
        assert abs(a.ppl - b.ppl) / a.ppl <= PER_TOKEN_TOL
    median = statistics.median(scorer.stats.seconds)
    print(f"scorer forwards: {scorer.stats.calls}, median {median * 1e3:.1f} ms")


def test_a_bad_request_is_an_error_and_the_scorer_keeps_serving(scorer) -> None:
    with pytest.raises(ScorerError, match="outside the vocabulary"):
        scorer.forward([[scorer.vocab_size + 3]])
    assert scorer.ping()
    assert scorer.forward([[1, 2, 3]])[0].shape == (3, scorer.vocab_size)


def test_the_remote_model_refuses_masks_it_cannot_honour(scorer) -> None:
    model = PetalsRemoteLM(scorer)
    ids = torch.tensor([[5, 6, 7, 8]])
    with pytest.raises(ValueError, match="padding"):
        model(ids, attention_mask=torch.tensor([[1, 1, 1, 0]]))
    wrong = torch.ones(1, 1, 4, 4, dtype=torch.bool)  # not causal
    with pytest.raises(ValueError, match="block-causal"):
        model(ids, position_ids=torch.tensor([[0, 1, 2, 3]]), attention_mask=wrong)


def test_stopping_a_peer_group_stops_its_p2pd_daemons(tmp_path: Path) -> None:
    peer = start_dht(tmp_path / "dht.log")
    try:
        ours = [pid for pid, pgid in procs.p2pd_processes() if pgid == peer.pid]
        assert ours, "a hivemind peer runs p2pd in its process group"
    finally:
        procs.stop_group(peer.pid)
    assert not procs.group_alive(peer.pid)
    assert not [pid for pid, pgid in procs.p2pd_processes() if pgid == peer.pid]
