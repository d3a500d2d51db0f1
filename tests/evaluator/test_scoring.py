"""The scorer against independent references: lm-eval-harness's HF backend and plain loops."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from mergenet.ecosystem.rows import draw_items
from mergenet.ecosystem.tasks import TASKS
from mergenet.ecosystem.tokenizer import save_tokenizer, train_tokenizer
from mergenet.evaluator.encoding import completion_prompt, continuation, encode_completions
from mergenet.evaluator.items import Item, row_text
from mergenet.evaluator.scoring import evaluate_items, score_sequences

TASK_NAMES = ["add_small", "upper", "lookup", "convert"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    texts = [
        row_text(it.completion_row())
        for name in TASK_NAMES
        for it in draw_items(TASKS[name], n=200, seed=0, split="train", distinct=False)
    ] + [
        row_text(it.dharma_row())
        for it in draw_items(TASKS["add"], n=200, seed=0, split="train", distinct=False)
    ]
    out = tmp_path_factory.mktemp("model")
    tok = save_tokenizer(train_tokenizer(texts, vocab_size=600), out)
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        intermediate_size=128,
        max_position_embeddings=512,
        tie_word_embeddings=False,
    )
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def items() -> list[Item]:
    return [
        it for name in TASK_NAMES for it in draw_items(TASKS[name], n=6, seed=3, split="heldout")
    ]


@pytest.fixture(scope="module")
def loaded(model_dir):
    return LlamaForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(
        model_dir
    )


def test_choice_loglikelihoods_match_lm_eval(model_dir, items, loaded) -> None:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model, tok = loaded
    jobs = [(it, c) for it in items for c in range(4)]
    ours = score_sequences(
        model, encode_completions(tok, [it for it, _ in jobs], [c for _, c in jobs])
    )
    lm = HFLM(pretrained=str(model_dir), device="cpu", batch_size=8)
    requests = [
        Instance("loglikelihood", {}, (completion_prompt(it), continuation(it.choices[c])), i)
        for i, (it, c) in enumerate(jobs)
    ]
    theirs = lm.loglikelihood(requests, disable_tqdm=True)
    diffs = [abs(o.answer_logprob - t[0]) for o, t in zip(ours, theirs, strict=True)]
    assert max(diffs) < 1e-4, max(diffs)


def test_evaluate_items_matches_a_plain_loop(items, loaded) -> None:
    model, tok = loaded
    result = evaluate_items(model, tok, items)
    letters = [tok.convert_tokens_to_ids(x) for x in "ABCD"]
    for task in TASK_NAMES:
        mine = [it for it in items if it.subject == task]
        correct_choice = correct_letter = 0
        nll = n_tok = 0.0
        for it in mine:
            lls = []
            for c in range(4):
                prompt = tok(completion_prompt(it), add_special_tokens=False)["input_ids"]
                cont = tok(continuation(it.choices[c]), add_special_tokens=False)["input_ids"]
                ids = torch.tensor([prompt + cont])
                with torch.no_grad():
                    logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
                per_token = [float(logp[t - 1, ids[0, t]]) for t in range(1, ids.shape[1])]
                lls.append(sum(per_token[len(prompt) - 1 :]))
                if c == it.answer_index:
                    nll -= sum(per_token)
                    n_tok += len(per_token)
            correct_choice += int(max(range(4), key=lls.__getitem__) == it.answer_index)
            text = row_text({"input": it.dharma_row()["input"], "output": ""})[:-2]
            ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
            with torch.no_grad():
                last = model(input_ids=ids).logits[0, -1, letters]
            correct_letter += int(int(torch.argmax(last)) == it.answer_index)
        got = result.tasks[task]
        assert got.n_rows == len(mine)
        assert got.acc_choice == pytest.approx(correct_choice / len(mine))
        assert got.acc_letter == pytest.approx(correct_letter / len(mine))
        assert got.ppl == pytest.approx(math.exp(nll / n_tok), rel=1e-4)


def test_loss_rows_are_scored_separately(items, loaded) -> None:
    model, tok = loaded
    small = evaluate_items(model, tok, items[:4], loss_items=items)
    assert small.tasks[items[0].subject].n_loss_rows == sum(
        1 for it in items if it.subject == items[0].subject
    )


def test_real_mmlu_rows_load_balance_and_score(loaded) -> None:
    """1,531 real MMLU rows parse into items and run through the same scorer."""
    fixture = Path(__file__).parent / "fixtures" / "seed_mmlu.jsonl"
    rows = [json.loads(line) for line in fixture.read_text().splitlines()]
    items = [Item.from_dharma_row(r) for r in rows]
    assert len(items) == len(rows) and all(len(it.choices) == 4 for it in items)
    counts = [sum(it.answer_index == k for it in items) for k in range(4)]
    assert max(counts) - min(counts) <= 0.05 * len(items) / 4
    model, tok = loaded
    sample = items[::40]  # 39 rows across subjects
    result = evaluate_items(model, tok, sample)
    total = sum(t.n_rows for t in result.tasks.values())
    assert total == len(sample)
    acc = sum(t.acc_choice * t.n_rows for t in result.tasks.values()) / total
    assert 0.0 <= acc <= 0.6  # an untrained model: near chance
    assert all(math.isfinite(t.ppl) for t in result.tasks.values())
