"""``finetune``: train the pulled core version on the contributor's rows; write what to submit.

Full fine-tuning writes a dense delta (fine-tuned − parent, safetensors); ``lora`` trains a
PEFT LoRA adapter and writes the adapter folder (the coordinator expands it itself). Either
way the output folder carries ``contribution.json`` naming the parent version, so ``submit``
signs against the version that was actually fine-tuned. Training uses the world's own loop
(``ecosystem.training``): packed rows, answer tokens at weight 1 and prompt tokens at the
world's prompt weight, a seed-determined order. A full fine-tune is pulled toward its parent
by an L2 penalty (``DEFAULT_L2``, measured: it forgets less and its deltas merge better); a
KL-to-parent penalty is available too (``ecosystem.regularisers``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mergenet.deltas.errors import DeltaValidationError
from mergenet.node.data import TrainRow, encode_rows
from mergenet.node.errors import NodeError

if TYPE_CHECKING:
    from mergenet.ecosystem.training import Regulariser

META = "contribution.json"
LORA_TARGETS = "all-linear"
"""PEFT's every linear layer but the output head, whatever the family calls them: Llama, Qwen,
Mistral and Gemma's ``q_proj`` … ``down_proj``, GPT-NeoX's ``query_key_value``, ``dense``,
``dense_h_to_4h``, ``dense_4h_to_h`` (a fixed list of Llama names matched nothing there)."""


DEFAULT_L2 = 0.3
"""The L2-to-parent λ of a full fine-tune, chosen by ``benchmarks/finetune_forgetting.py``
(world db45132220f1, alice and bob, 40 steps from the base, held-out rows; AMD EPYC 2 cores,
load ~8). Against plain fine-tuning (λ 0) it keeps 92% of the own-task gain (+0.367 against
+0.398), forgets a sixth as much (other tasks −0.015 against −0.097), and the two deltas add up:
task arithmetic at weight 1 scores macro 0.713 against 0.535 (base 0.730), at 0.5 0.760 against
0.725. λ 1 forgets nothing but keeps 64% of the gain. KL to the parent did no better at the same
own gain (λ 3: +0.383, others −0.044, merges 0.683 / 0.740; L2 0.1: +0.383, −0.039, 0.678 /
0.751) and costs a second forward pass per step. The README has the whole table."""


@dataclass(frozen=True)
class FinetuneConfig:
    steps: int = 40
    lr: float | None = None
    """None: 2.5e-4 for full fine-tuning (as the world's contributors: learns a task in 40
    steps while keeping the rest, so the delta merges well), 2e-3 for LoRA."""
    lora: bool = False
    lora_rank: int = 8
    batch_size: int = 16
    seq_len: int = 256
    prompt_weight: float = 0.1
    seed: int = 0
    l2_to_parent: float | None = None
    """λ of ``λ·Σ‖θ − θ_parent‖²`` added to the loss (``ecosystem.regularisers.L2ToParent``);
    0 turns it off. None: ``DEFAULT_L2`` for full fine-tuning, 0 for LoRA (there θ would be
    the adapter's factors, anchored at their initialisation: not measured)."""
    kl_to_parent: float = 0.0
    """λ of ``λ·KL(parent ‖ model)`` of next-token distributions on each batch
    (``ecosystem.regularisers.KLToParent``); one more forward pass per step. 0: none."""

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (2e-3 if self.lora else 2.5e-4)

    @property
    def l2_penalty(self) -> float:
        if self.l2_to_parent is not None:
            return self.l2_to_parent
        return 0.0 if self.lora else DEFAULT_L2


@dataclass(frozen=True)
class FinetuneResult:
    out: Path
    kind: str
    """"delta" (a dense safetensors file) or "lora" (a PEFT adapter folder)."""
    parent_hash: str
    rows: int
    steps: int
    first_loss: float
    last_loss: float
    seconds: float

    @property
    def artifact(self) -> Path:
        return self.out / "delta.safetensors" if self.kind == "delta" else self.out / "adapter"


def finetune(
    parent_dir: Path,
    parent_hash: str,
    rows: list[TrainRow],
    out: Path,
    cfg: FinetuneConfig,
    on_step: Callable[[int, float], None] | None = None,
) -> FinetuneResult:
    from mergenet.ecosystem.training import TrainConfig, sample_rows, train_lm

    if cfg.steps < 1:
        raise NodeError("--steps must be at least 1")
    if out.exists():
        raise NodeError(f"{out} already exists: choose another --out")
    _check_penalties(cfg)
    model, pool = _trainable(parent_dir, rows, cfg)
    train_cfg = TrainConfig(
        steps=cfg.steps,
        batch_size=cfg.batch_size,
        seq_len=cfg.seq_len,
        lr=cfg.learning_rate,
        warmup=min(20, cfg.steps // 5),
        seed=cfg.seed,
        prompt_weight=cfg.prompt_weight,
    )
    started = time.time()
    losses = train_lm(
        model,
        sample_rows(pool, cfg.seed),
        train_cfg,
        on_step=on_step,
        regulariser=_regulariser(model, cfg),
    )
    staging = out.with_name(out.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    if cfg.lora:
        model.save_pretrained(staging / "adapter")
    else:
        _write_delta(parent_dir, model, staging / "delta.safetensors")
    result = FinetuneResult(
        out=out,
        kind="lora" if cfg.lora else "delta",
        parent_hash=parent_hash,
        rows=len(rows),
        steps=cfg.steps,
        first_loss=losses[0],
        last_loss=sum(losses[-5:]) / len(losses[-5:]),
        seconds=time.time() - started,
    )
    used = asdict(cfg) | {"l2_to_parent": cfg.l2_penalty}  # the λ used, default resolved
    meta = asdict(result) | {"out": None, "config": used}
    (staging / META).write_text(json.dumps(meta, indent=2) + "\n")
    staging.rename(out)
    return result


def _check_penalties(cfg: FinetuneConfig) -> None:
    for flag, lam in (("--l2-to-parent", cfg.l2_penalty), ("--kl-to-parent", cfg.kl_to_parent)):
        if not math.isfinite(lam) or lam < 0:
            raise NodeError(f"{flag} must be a finite number ≥ 0 (0 turns it off), got {lam}")


def _regulariser(model: Any, cfg: FinetuneConfig) -> Regulariser | None:
    """The penalties ``cfg`` asks for, built on the untrained model (so it is the parent)."""
    from mergenet.ecosystem.regularisers import KLToParent, L2ToParent, combine, frozen_parent

    parts: list[Regulariser] = []
    if cfg.l2_penalty > 0:
        parts.append(L2ToParent(model, cfg.l2_penalty))
    if cfg.kl_to_parent > 0:
        parts.append(KLToParent(frozen_parent(model), cfg.kl_to_parent))
    return combine(parts)


def _trainable(parent_dir: Path, rows: list[TrainRow], cfg: FinetuneConfig) -> tuple[Any, Any]:
    """(model to train: the parent, or a LoRA wrapper around it; the encoded rows)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(parent_dir)
    # Any: a transformers model, or the PEFT wrapper around it below (same calls on both)
    model: Any = AutoModelForCausalLM.from_pretrained(parent_dir, dtype=torch.float32)
    pool = encode_rows(tokenizer, rows)
    longest = max(len(ids) for ids, _ in pool)
    if longest > model.config.max_position_embeddings:
        raise NodeError(
            f"a row is {longest} tokens, more than the model's "
            f"{model.config.max_position_embeddings}: shorten the longest rows"
        )
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(r=cfg.lora_rank, lora_alpha=2 * cfg.lora_rank, target_modules=LORA_TARGETS),
        )
    return model, pool


def _write_delta(parent_dir: Path, model: Any, path: Path) -> None:
    """``fine-tuned − parent`` with the parent's names and dtypes (``deltas.extract_delta``).

    The fine-tuned tensors are taken under the names the parent's checkpoint file uses
    (``checkpoint_state``): GPT-NeoX's head is ``lm_head`` in memory but ``embed_out`` on disk,
    and a tied head is one tensor in the file, two names in ``state_dict()``.
    """
    from safetensors.torch import save_file

    from mergenet.deltas.extract import extract_delta
    from mergenet.deltas.models import ModelSource
    from mergenet.merge_strategies.checkpoint_names import checkpoint_state

    parent = ModelSource(parent_dir).state_dict()
    tuned = checkpoint_state(model)
    try:
        delta = extract_delta(tuned, parent)
    except DeltaValidationError as exc:
        raise NodeError(f"the fine-tuned model does not match its parent: {exc}") from None
    save_file({n: t.contiguous() for n, t in delta.items()}, str(path))
