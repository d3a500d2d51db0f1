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
batches). Log-probabilities are taken only at the positions that predict a scored token: the
decoder runs over every node, the output layer and log-softmax only over those positions
(``tree_forward.py``), and ``totals=False`` (what lm-eval's ``loglikelihood`` returns) reads only
answer tokens, 6,195 of the 12,074 tree nodes of ``benchmarks/scoring_speed.py``'s 1,280 base
requests. CPU seconds per call on those requests (1 thread, process time, AMD EPYC under load
average ~15; the elementwise costs that wall-clock profiles on the loaded machine blamed,
rotary embeddings and RMSNorm, are under 10% here, the linear layers ~55%, SDPA ~16%): the
previous scorer 0.93, this one 0.90 with totals and 0.82 answers only; tree building 95 → 36 ms,
tokenising 56 → 30 ms (a question's prompt once). No per-node Python loop is left: the
per-sequence sums are one ``index_add_`` over concatenated path slices. Sizes measured on the
base: trees of 128 tokens as fast as 256, of 512 slower (0.92 s, attention); 1,024 or 4,096
tokens per forward no faster than 2,048; so ``DEFAULT_TREE_TOKENS`` and ``BATCH_TOKENS`` stay.
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
from mergenet.evaluator.tree_forward import tree_logprobs
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


@dataclass
class _Segments:
    """Each sequence's scored nodes: tree-local indices concatenated, counts, tree offsets."""

    index: list[int]
    counts: list[int]
    bases: list[int]

    def add(self, base: int, nodes: list[int]) -> None:
        self.index.extend(nodes)
        self.counts.append(len(nodes))
        self.bases.append(base)

    def flat(self) -> torch.Tensor:
        """Flat ``b * length + i`` positions of all segments' nodes, concatenated."""
        counts = torch.tensor(self.counts, dtype=torch.long)
        offsets = torch.repeat_interleave(torch.tensor(self.bases, dtype=torch.long), counts)
        return torch.tensor(self.index, dtype=torch.long) + offsets

    def sums(self, node_lp: torch.Tensor) -> list[float]:
        """Per sequence, the sum of ``node_lp`` over its segment (float64)."""
        counts = torch.tensor(self.counts, dtype=torch.long)
        seg = torch.repeat_interleave(torch.arange(len(self.counts)), counts)
        total = torch.zeros(len(self.counts), dtype=node_lp.dtype)
        return total.index_add_(0, seg, node_lp[self.flat()]).tolist()


def _segments(
    group: Sequence[PrefixTree], length: int, sequences: Sequence[tuple[list[int], int]]
) -> tuple[list[int], _Segments, _Segments, list[int]]:
    """Per sequence of the batch (``tree.paths`` order): key, answer and whole-row segments
    (nodes after ``answer_start``, resp. after the first) and last node, all as flat
    ``b * length + i`` positions. Path slices are taken whole, so no loop runs per node.
    """
    keys: list[int] = []
    answers, rows = _Segments([], [], []), _Segments([], [], [])
    lasts: list[int] = []
    for b, tree in enumerate(group):
        base = b * length
        for key, path in tree.paths.items():
            keys.append(key)
            answers.add(base, path[max(sequences[key][1], 1) :])
            rows.add(base, path[1:])
            lasts.append(base + path[-1])
    return keys, answers, rows, lasts


def _additive_mask_dtype(model: torch.nn.Module) -> torch.dtype | None:
    """The float mask's dtype where a model adds the mask to its scores, else None (boolean).

    SDPA takes the boolean tree mask as it is (measured 3% less CPU time on the world's base
    than building the float one); eager attention (Gemma-2's default) adds a 4-D mask to the
    scores, so it gets 0 where a token may attend and the dtype's minimum elsewhere. The Petals
    client takes the boolean mask.
    """
    if not isinstance(model, PreTrainedModel):
        return None
    return None if model.config._attn_implementation == "sdpa" else model.dtype


def _parent_positions(group: Sequence[PrefixTree], length: int) -> torch.Tensor:
    """Flat position of each node's parent (``b * length + parent``); -1 for roots and padding."""
    par = torch.full((len(group), length), -1, dtype=torch.long)
    for b, tree in enumerate(group):
        par[b, : len(tree)] = torch.tensor(tree.parents)
    offsets = (torch.arange(len(group)) * length)[:, None]
    return torch.where(par >= 0, par + offsets, par).reshape(-1)


def _score_group(
    model: torch.nn.Module,
    group: Sequence[PrefixTree],
    sequences: Sequence[tuple[list[int], int]],
    keep: torch.Tensor | None,
    totals: bool,
) -> dict[int, RowScore]:
    """One forward over ``group``: a ``RowScore`` per sequence key in it.

    A node is scored when it has a parent and (``totals=False``) lies in an answer segment.
    """
    batch = to_batch(group, additive=_additive_mask_dtype(model))
    length = batch["input_ids"].shape[1]
    keys, answers, rows, lasts = _segments(group, length, sequences)
    parent_of = _parent_positions(group, length)
    if totals:
        scored = parent_of >= 0
    else:
        scored = torch.zeros(parent_of.shape, dtype=torch.bool)
        scored[answers.flat()] = True
    nodes = torch.nonzero(scored)[:, 0]
    tokens = batch["input_ids"].reshape(-1)[nodes]
    lp, last_logits = tree_logprobs(
        model, batch, parent_of[nodes], tokens, torch.tensor(lasts), keep
    )
    node_lp = torch.zeros(parent_of.shape, dtype=torch.float64)
    node_lp[nodes] = lp.double()
    answer_lp = answers.sums(node_lp)
    row_lp = rows.sums(node_lp) if totals else [math.nan] * len(keys)
    out: dict[int, RowScore] = {}
    for k, key in enumerate(keys):
        ids, answer_start = sequences[key]
        out[key] = RowScore(
            total_logprob=row_lp[k],
            n_tokens=len(ids) - 1,
            answer_logprob=answer_lp[k],
            n_answer_tokens=max(len(ids) - max(answer_start, 1), 0),
            last_logits=last_logits[k].clone() if last_logits is not None else None,
        )
    return out


@torch.inference_mode()
def score_sequences(
    model: torch.nn.Module,
    sequences: Sequence[tuple[list[int], int]],
    *,
    max_tokens: int = DEFAULT_TREE_TOKENS,
    keep_last_logits: Sequence[int] | None = None,
    progress: ProgressFn | None = None,
    totals: bool = True,
) -> list[RowScore]:
    """Score ``(ids, answer_start)`` sequences; shared prefixes are computed once.

    ``max_tokens`` caps the tokens of one prefix tree (one row of a forward batch).
    ``keep_last_logits`` names vocabulary ids whose logits at each row's last position are kept
    (the answer letters, for letter accuracy). ``totals=False`` reads log-probabilities only
    for the answer tokens (what lm-eval's ``loglikelihood`` returns): ``total_logprob`` is then
    NaN. A model that is not a transformers ``PreTrainedModel`` (the Petals client) gets plain
    block-diagonal packs, one per forward.
    """
    if any(not ids for ids, _ in sequences):
        raise ValueError("cannot score an empty sequence")
    share = isinstance(model, PreTrainedModel)
    trees = build_trees([ids for ids, _ in sequences], max_tokens=max_tokens, share=share)
    per_forward = max(1, BATCH_TOKENS // max(max_tokens, 1)) if share else 1
    keep = torch.tensor(keep_last_logits) if keep_last_logits is not None else None
    out: dict[int, RowScore] = {}
    was_training = model.training
    model.eval()
    for first in range(0, len(trees), per_forward):
        out.update(_score_group(model, trees[first : first + per_forward], sequences, keep, totals))
        if progress:
            progress(min(first + per_forward, len(trees)), len(trees))
    model.train(was_training)
    return [out[k] for k in range(len(sequences))]


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
            correct=tuple(v == 1.0 for v in a["choice"]),  # per item, for paired tests
            item_loss=tuple(
                round(-lp / max(n, 1), 6)
                for lp, n in zip(a["answer_lp"], a["answer_tokens"], strict=True)
            ),
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
