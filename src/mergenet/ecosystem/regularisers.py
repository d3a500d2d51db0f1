"""Penalties that keep a fine-tune near its parent, for ``training.train_lm``'s hook.

A contribution is merged into a core that must keep every other task, so what a delta
*forgets* costs the network as much as what it learns helps. Two classic answers, both
measured by ``benchmarks/finetune_forgetting.py``:

* ``L2ToParent``: ``λ · Σ ‖θ − θ_parent‖²`` over the trained parameters (L2-SP, Li et al.
  2018), so the delta's norm is what the optimiser pays for.
* ``KLToParent``: ``λ · KL(p_parent ‖ p_θ)`` of the next-token distributions on the same batch
  (learning without forgetting, Li & Hoiem 2016), averaged over every in-row position; the
  parent is a frozen copy (the world's 2.56M-parameter Llama: ~10 MB more and one more
  forward pass per step), or, under LoRA, the same model with its adapter switched off.

A regulariser is called after the forward pass with ``(model, inputs, logits, batch)`` and
returns a scalar added to the loss; ``train_lm`` without one is the unregularised loop.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from mergenet.ecosystem.training import Regulariser
from mergenet.evaluator.packing import Packed

ParentLogits = Callable[[Mapping[str, torch.Tensor]], torch.Tensor]


class L2ToParent:
    """``λ · Σ ‖θ − θ₀‖²`` over the parameters that train, θ₀ taken when this is built.

    Build it before the first optimiser step: θ₀ is then the parent. Its gradient ``2λ(θ − θ₀)``
    pulls each weight back toward the parent in proportion to how far it moved.
    """

    def __init__(self, model: torch.nn.Module, lam: float):
        self.lam = lam
        self.anchor = {
            n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
        }

    def __call__(
        self,
        model: torch.nn.Module,
        inputs: Mapping[str, torch.Tensor],
        logits: torch.Tensor,
        batch: Sequence[Packed],
    ) -> torch.Tensor:
        params = dict(model.named_parameters())
        total = sum(((params[n] - a) ** 2).sum() for n, a in self.anchor.items())
        return self.lam * torch.as_tensor(total)


class KLToParent:
    """``λ · mean KL(p_parent ‖ p_θ)`` over the positions that predict an in-row token.

    The positions are those ``training.weighted_loss`` trains (answer and prompt alike, the
    first token of each packed segment excepted): the penalty asks the model to keep the
    parent's predictions everywhere the batch shows it, the answers included, so λ trades
    the new task against the old behaviour on the same tokens.
    """

    def __init__(self, parent_logits: ParentLogits, lam: float):
        self.parent_logits = parent_logits
        self.lam = lam

    def __call__(
        self,
        model: torch.nn.Module,
        inputs: Mapping[str, torch.Tensor],
        logits: torch.Tensor,
        batch: Sequence[Packed],
    ) -> torch.Tensor:
        with torch.no_grad():
            ref = self.parent_logits(inputs)[:, :-1].float().log_softmax(-1)
        own = logits[:, :-1].float().log_softmax(-1)
        kl = (ref.exp() * (ref - own)).sum(-1)
        keep = torch.tensor([p.context_mask for p in batch])[:, 1:].float()
        return self.lam * (kl * keep).sum() / keep.sum().clamp(min=1)


def frozen_parent(model: torch.nn.Module) -> ParentLogits:
    """The parent's logits: the adapter switched off (PEFT), else a frozen copy taken now."""
    if hasattr(model, "disable_adapter"):  # a PEFT wrapper: the base weights are the parent
        peft_model: Any = model

        def adapter_off(inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
            with peft_model.disable_adapter():
                return peft_model(**inputs).logits

        return adapter_off
    parent = copy.deepcopy(model).eval().requires_grad_(False)
    return lambda inputs: parent(**inputs).logits


def combine(parts: Sequence[Regulariser]) -> Regulariser | None:
    """One regulariser summing ``parts``; None when there is none (the plain loop)."""
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]

    def total(
        model: torch.nn.Module,
        inputs: Mapping[str, torch.Tensor],
        logits: torch.Tensor,
        batch: Sequence[Packed],
    ) -> torch.Tensor:
        return torch.stack([p(model, inputs, logits, batch) for p in parts]).sum()

    return total
