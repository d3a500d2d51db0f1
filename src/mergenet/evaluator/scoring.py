"""Packed, pad-free scoring of items with a transformers causal LM.

For each task it measures the whole-row perplexity of the completion row, the answer loss
given the prompt, and two multiple-choice accuracies: by the answer-letter logits of the
Dharma row (Dharma/axolotl style) and by the log-likelihood of each choice's text after
the question (lm-eval's multiple-choice method). All sequences of a call are packed into a
few long sequences with a block-diagonal mask, so nothing is spent on padding.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from mergenet.evaluator.encoding import (
    encode_completions,
    encode_texts,
    letter_prompt,
    letter_token_ids,
)
from mergenet.evaluator.items import Item
from mergenet.evaluator.packing import pack_rows, to_tensors
from mergenet.protocol.results import EvalResult, TaskResult

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class RowScore:
    """Log-probabilities of one scored sequence."""

    total_logprob: float
    n_tokens: int
    """Predicted tokens: every token after the first."""
    answer_logprob: float
    n_answer_tokens: int
    last_logits: torch.Tensor | None


@torch.no_grad()
def score_sequences(
    model: torch.nn.Module,
    sequences: Sequence[tuple[list[int], int]],
    *,
    max_tokens: int = 1024,
    keep_last_logits: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> list[RowScore]:
    """Score ``(ids, answer_start)`` sequences.

    ``keep_last_logits`` names vocabulary ids whose logits at each row's last position are kept
    (the answer letters, for letter accuracy).
    """
    packs = pack_rows([ids for ids, _ in sequences], max_tokens=max_tokens)
    out: list[RowScore | None] = [None] * len(sequences)
    keep = torch.tensor(keep_last_logits) if keep_last_logits is not None else None
    was_training = model.training
    model.eval()
    for done, pack in enumerate(packs, start=1):
        inputs = to_tensors([pack])
        logits = model(**inputs).logits[0].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        ids = inputs["input_ids"][0]
        for key, (start, end) in zip(pack.keys, pack.spans, strict=True):
            # log p(token t | tokens < t) for t in (start, end)
            lp = logprobs[start : end - 1].gather(1, ids[start + 1 : end, None])[:, 0]
            answer_start = sequences[key][1]
            answer_lp = lp[max(answer_start - 1, 0) :]
            last = logits[end - 1, keep].clone() if keep is not None else None
            out[key] = RowScore(
                total_logprob=float(lp.sum()),
                n_tokens=end - start - 1,
                answer_logprob=float(answer_lp.sum()),
                n_answer_tokens=int(answer_lp.numel()),
                last_logits=last,
            )
        if progress:
            progress(done, len(packs))
    model.train(was_training)
    return [r for r in out if r is not None]


@torch.no_grad()
def evaluate_items(
    model: torch.nn.Module,
    tokenizer,
    items: Sequence[Item],
    loss_items: Sequence[Item] | None = None,
    *,
    max_tokens: int = 1024,
    progress: ProgressFn | None = None,
) -> EvalResult:
    """Per-task results over ``items`` (PPL, accuracies) and ``loss_items`` (answer loss).

    ``loss_items`` is the larger n² sample of the seed's L term; it defaults to ``items``.
    """
    loss_items = list(items if loss_items is None else loss_items)
    letters = letter_token_ids(tokenizer)
    choice_jobs: list[tuple[int, int]] = [
        (i, c) for i, it in enumerate(items) for c in range(len(it.choices))
    ]
    choice_seqs = encode_completions(
        tokenizer, [items[i] for i, _ in choice_jobs], [c for _, c in choice_jobs]
    )
    loss_seqs = encode_completions(tokenizer, loss_items)
    letter_seqs = [
        (ids, len(ids)) for ids in encode_texts(tokenizer, [letter_prompt(it) for it in items])
    ]
    sequences = choice_seqs + loss_seqs + letter_seqs
    scores = score_sequences(
        model, sequences, max_tokens=max_tokens, keep_last_logits=letters, progress=progress
    )
    choice_scores = scores[: len(choice_seqs)]
    loss_scores = scores[len(choice_seqs) : len(choice_seqs) + len(loss_seqs)]
    letter_scores = scores[len(choice_seqs) + len(loss_seqs) :]

    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    choice_lp: dict[int, list[float]] = defaultdict(list)
    for (i, c), s in zip(choice_jobs, choice_scores, strict=True):
        choice_lp[i].append(s.answer_logprob)
        if c == items[i].answer_index:
            acc[items[i].subject]["row_lp"].append(s.total_logprob)
            acc[items[i].subject]["row_tokens"].append(s.n_tokens)
    for i, it in enumerate(items):
        lps = choice_lp[i]
        acc[it.subject]["choice"].append(
            float(max(range(len(lps)), key=lps.__getitem__) == it.answer_index)
        )
        letter_logits = letter_scores[i].last_logits
        assert letter_logits is not None
        guess = int(torch.argmax(letter_logits[: len(it.choices)]))
        acc[it.subject]["letter"].append(float(guess == it.answer_index))
    for it, s in zip(loss_items, loss_scores, strict=True):
        acc[it.subject]["answer_lp"].append(s.answer_logprob)
        acc[it.subject]["answer_tokens"].append(s.n_answer_tokens)

    tasks = {}
    for subject in sorted(acc):
        a = acc[subject]
        n_rows = len(a["choice"])
        tasks[subject] = TaskResult(
            task=subject,
            n_rows=n_rows,
            ppl=math.exp(-sum(a["row_lp"]) / max(sum(a["row_tokens"]), 1)),
            answer_loss=-sum(a["answer_lp"]) / max(sum(a["answer_tokens"]), 1),
            acc_letter=sum(a["letter"]) / max(n_rows, 1),
            acc_choice=sum(a["choice"]) / max(n_rows, 1),
            n_loss_rows=len(a["answer_lp"]),
        )
    return EvalResult(tasks=tasks)
