"""A small causal-LM training loop over packed rows (the world's base, specialists, monolith).

Plain PyTorch rather than ``transformers.Trainer``: the loop needs the block-diagonal packed
mask from ``mergenet.evaluator.packing`` and an exact, seed-determined order of rows, and at
a few million parameters the Trainer's machinery costs more than the model.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch

from mergenet.evaluator.packing import Packed, chunk_stream, to_tensors

Regulariser = Callable[
    [torch.nn.Module, Mapping[str, torch.Tensor], torch.Tensor, Sequence[Packed]], torch.Tensor
]
"""``(model, inputs, logits, batch) → scalar`` added to a batch's loss (``regularisers.py``)."""


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 2e-3
    warmup: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    seed: int = 0
    prompt_weight: float = 0.0
    """Weight of the tokens before each row's answer start, relative to the answer's 1.0.

    0 trains the answer only (completion-only). A small weight (the world uses 0.1) also
    models the prompt, so whole-row perplexity stays meaningful, while the answer keeps the
    gradient it would have alone: the loss is normalised by the answer-token count.
    """


Row = tuple[Sequence[int], int]
"""Token ids and the index of the first trained token (0 = the whole row)."""


def sample_rows(pool: Sequence[Row], seed: int) -> Iterator[Row]:
    """An endless, seed-determined stream of rows drawn from ``pool`` (epochs reshuffled)."""
    rng = random.Random(seed)
    order = list(range(len(pool)))
    while True:
        rng.shuffle(order)
        for i in order:
            yield pool[i]


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr_ratio`` of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine)


def weighted_loss(
    logits: torch.Tensor, input_ids: torch.Tensor, batch: Sequence, prompt_weight: float
) -> torch.Tensor:
    """Next-token cross-entropy: answer tokens weigh 1, other in-row tokens ``prompt_weight``.

    Normalised by the number of answer tokens, so with ``prompt_weight=0`` this is exactly the
    completion-only mean loss (a test checks it against transformers' own loss).
    """
    answer = torch.tensor([p.loss_mask for p in batch])[:, 1:]
    context = torch.tensor([p.context_mask for p in batch])[:, 1:]
    weights = answer.float() + prompt_weight * (context & ~answer).float()
    targets = input_ids[:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        reduction="none",
    ).view_as(targets)
    return (per_token * weights).sum() / answer.sum().clamp(min=1)


def train_lm(
    model: torch.nn.Module,
    rows: Iterator[Row],
    cfg: TrainConfig,
    *,
    on_step: Callable[[int, float], None] | None = None,
    regulariser: Regulariser | None = None,
) -> list[float]:
    """Train ``model`` for ``cfg.steps`` steps on packed chunks of ``rows``; returns the losses.

    ``regulariser``'s value is added to each batch's loss before the backward pass; the
    returned (and ``on_step``) losses are the task loss alone, comparable with and without
    one. Without one the loop is exactly the unregularised one (no extra operation runs).
    """
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay
    )
    chunks = chunk_stream(rows, seq_len=cfg.seq_len)
    model.train()
    losses: list[float] = []
    for step in range(cfg.steps):
        batch = [next(chunks) for _ in range(cfg.batch_size)]
        inputs = to_tensors(batch)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        logits = model(**inputs).logits
        loss = weighted_loss(logits, inputs["input_ids"], batch, cfg.prompt_weight)
        total = loss + regulariser(model, inputs, logits, batch) if regulariser else loss
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step:
            on_step(step + 1, losses[-1])
    model.eval()
    return losses
