"""Packed, pad-free scoring of items with a transformers causal LM.

For each task it measures the whole-row perplexity of the completion row, the answer loss
given the prompt, and two multiple-choice accuracies: by the answer-letter logits of the
Dharma row (Dharma/axolotl style) and by the log-likelihood of each choice's text after
the question (lm-eval's multiple-choice method).

Every sequence of a call goes into token prefix trees (``prefix_tree.py``): a question's prompt
is computed once for its four choices, its answer-loss row and the start of its letter prompt,
and no padding token is ever scored. Trees are short (``DEFAULT_TREE_TOKENS``) and several go
into one forward pass (``BATCH_TOKENS``), so attention is never quadratic in a long pack (the
first scorer's 1,024-token packs with a dense block mask made it 6x slower than lm-eval's padded
batches). Log-probabilities are taken only at the positions that predict a scored token.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel

from mergenet.evaluator.encoding import (
    encode_completions,
    encode_texts,
    letter_prompt,
    letter_token_ids,
)
from mergenet.evaluator.items import Item
from mergenet.evaluator.prefix_tree import PrefixTree, build_trees, to_batch
from mergenet.protocol.results import EvalResult, TaskResult

ProgressFn = Callable[[int, int], None]

DEFAULT_TREE_TOKENS = 256
"""Tokens per prefix tree (one batch row): attention is quadratic only within a tree."""
BATCH_TOKENS = 2048
"""Tokens per forward pass: several trees side by side, so the linear layers see big matrices."""


@dataclass(frozen=True)
class RowScore:
    """Log-probabilities of one scored sequence."""

    total_logprob: float
    n_tokens: int
    """Predicted tokens: every token after the first."""
    answer_logprob: float
    n_answer_tokens: int
    last_logits: torch.Tensor | None


def _forward_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of a batch of trees.

    A transformers model gets the tree mask as an additive float mask (0 where a token may
    attend, the dtype's minimum elsewhere): SDPA takes either form, but eager attention (Gemma-2's
    default) adds a 4-D mask to the scores, so a boolean one would add 0/1 instead of masking.
    """
    if isinstance(model, PreTrainedModel):
        allowed = batch["attention_mask"]
        dtype = model.dtype
        additive = torch.zeros(allowed.shape, dtype=dtype).masked_fill(
            ~allowed, torch.finfo(dtype).min
        )
        batch = {**batch, "attention_mask": additive}
    return model(**batch).logits.float()


def _node_logprobs(trees: Sequence[PrefixTree], logits: torch.Tensor) -> list[list[float]]:
    """log p(node's token | its ancestors) per node of each tree; 0 for a root."""
    batch, length, vocab = logits.shape
    flat = logits.reshape(batch * length, vocab)
    rows, cols, where = [], [], []
    for b, tree in enumerate(trees):
        for i, (parent, token) in enumerate(zip(tree.parents, tree.tokens, strict=True)):
            if parent >= 0:
                rows.append(b * length + parent)
                cols.append(token)
                where.append((b, i))
    out = [[0.0] * len(t) for t in trees]
    if rows:
        r = torch.tensor(rows)
        picked = flat[r, torch.tensor(cols)] - torch.logsumexp(flat[r], dim=-1)
        for (b, i), v in zip(where, picked.tolist(), strict=True):
            out[b][i] = v
    return out


def _path_sums(tree: PrefixTree, node_lp: list[float]) -> list[float]:
    """Cumulative log-probability from the root to each node (preorder: parents first)."""
    cum = [0.0] * len(tree)
    for i, parent in enumerate(tree.parents):
        if parent >= 0:
            cum[i] = cum[parent] + node_lp[i]
    return cum


@torch.inference_mode()
def score_sequences(
    model: torch.nn.Module,
    sequences: Sequence[tuple[list[int], int]],
    *,
    max_tokens: int = DEFAULT_TREE_TOKENS,
    keep_last_logits: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
) -> list[RowScore]:
    """Score ``(ids, answer_start)`` sequences; shared prefixes are computed once.

    ``max_tokens`` caps the tokens of one prefix tree (one row of a forward batch).
    ``keep_last_logits`` names vocabulary ids whose logits at each row's last position are kept
    (the answer letters, for letter accuracy). A model that is not a transformers
    ``PreTrainedModel`` (the Petals client) gets plain block-diagonal packs, one per forward.
    """
    if any(not ids for ids, _ in sequences):
        raise ValueError("cannot score an empty sequence")
    share = isinstance(model, PreTrainedModel)
    trees = build_trees([ids for ids, _ in sequences], max_tokens=max_tokens, share=share)
    per_forward = max(1, BATCH_TOKENS // max(max_tokens, 1)) if share else 1
    keep = torch.tensor(keep_last_logits) if keep_last_logits is not None else None
    out: list[RowScore | None] = [None] * len(sequences)
    was_training = model.training
    model.eval()
    for first in range(0, len(trees), per_forward):
        group = trees[first : first + per_forward]
        logits = _forward_logits(model, to_batch(group))
        for b, (tree, node_lp) in enumerate(zip(group, _node_logprobs(group, logits), strict=True)):
            cum = _path_sums(tree, node_lp)
            for key, path in tree.paths.items():
                ids, answer_start = sequences[key]
                start = max(answer_start, 1)
                last = path[-1]
                out[key] = RowScore(
                    total_logprob=cum[last],
                    n_tokens=len(ids) - 1,
                    answer_logprob=cum[last] - cum[path[start - 1]] if start <= len(ids) else 0.0,
                    n_answer_tokens=max(len(ids) - start, 0),
                    last_logits=logits[b, last, keep].clone() if keep is not None else None,
                )
        if progress:
            progress(min(first + per_forward, len(trees)), len(trees))
    model.train(was_training)
    return [r for r in out if r is not None]


Tally = dict[str, dict[str, list[float]]]
"""subject → measure → per-row values, summed into a ``TaskResult`` at the end."""


def _tally_choices(
    items: Sequence[Item],
    choice_jobs: Sequence[tuple[int, int]],
    choice_scores: Sequence[RowScore],
    letter_scores: Sequence[RowScore],
    acc: Tally,
) -> None:
    """Choice-LL and letter accuracy per item; the correct row's log-likelihood for PPL."""
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


def _task_results(acc: Tally) -> EvalResult:
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


@torch.inference_mode()
def evaluate_items(
    model: torch.nn.Module,
    tokenizer: Any,  # an HF tokenizer (encoding.TextTokenizer does not describe one yet)
    items: Sequence[Item],
    loss_items: Sequence[Item] | None = None,
    *,
    max_tokens: int = DEFAULT_TREE_TOKENS,
    progress: ProgressFn | None = None,
) -> EvalResult:
    """Per-task results over ``items`` (PPL, accuracies) and ``loss_items`` (answer loss).

    ``loss_items`` is the larger n² sample of the seed's L term; it defaults to ``items``. All
    three kinds of sequence go to one ``score_sequences`` call, so the prefix trees share a
    question's prompt across its choices, its answer-loss row and its letter prompt.
    """
    loss_items = list(items if loss_items is None else loss_items)
    choice_jobs = [(i, c) for i, it in enumerate(items) for c in range(len(it.choices))]
    choice_seqs = encode_completions(
        tokenizer, [items[i] for i, _ in choice_jobs], [c for _, c in choice_jobs]
    )
    loss_seqs = encode_completions(tokenizer, loss_items)
    letter_seqs = [
        (ids, len(ids)) for ids in encode_texts(tokenizer, [letter_prompt(it) for it in items])
    ]
    scores = score_sequences(
        model,
        choice_seqs + loss_seqs + letter_seqs,
        max_tokens=max_tokens,
        keep_last_logits=letter_token_ids(tokenizer),
        progress=progress,
    )
    n_choice, n_loss = len(choice_seqs), len(loss_seqs)
    acc: Tally = defaultdict(lambda: defaultdict(list))
    _tally_choices(items, choice_jobs, scores[:n_choice], scores[n_choice + n_loss :], acc)
    for it, s in zip(loss_items, scores[n_choice : n_choice + n_loss], strict=True):
        acc[it.subject]["answer_lp"].append(s.answer_logprob)
        acc[it.subject]["answer_tokens"].append(s.n_answer_tokens)
    return _task_results(acc)
