"""A merge strategy: tensor math over one base tensor and k deltas, plus its parameter space.

mergenet works in delta space (a contribution is ``θ_k − θ_base``); mergekit works on whole
models. The bridge is exact by construction: contribution k *is* the model ``base + δ_k``, and
every strategy's parameter names and defaults are mergekit's, so a strategy is fully
described by (mergekit method name, params, per-delta weights). Strategies that the loop
uses most carry a fused ``kernel`` that computes the same result much faster; the others
run mergekit's own implementation tensor by tensor (``merge_tensors``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from mergenet.merge_strategies.space import Params, ParamSpace


class Kernel(Protocol):
    """Fused merge of one tensor: returns a float32 tensor shaped like ``base``."""

    def __call__(
        self,
        base: torch.Tensor,
        deltas: Sequence[torch.Tensor],
        weights: Sequence[float],
        params: Mapping[str, Any],
        generator: torch.Generator | None,
    ) -> torch.Tensor: ...


@dataclass(frozen=True)
class Strategy:
    """A named merge strategy (see module docstring)."""

    name: str
    mergekit_method: str
    space: ParamSpace
    description: str = ""
    kernel: Kernel | None = None
    uses_weights: bool = True
    """Whether per-delta weights mean anything (mergekit's ``weight`` parameter)."""
    base_input: bool = True
    """Whether the base model is one of mergekit's inputs (False for base-less methods)."""
    min_deltas: int = 1
    max_deltas: int | None = None
    stochastic: bool = False
    """Whether the result depends on the random seed (DARE, DELLA)."""
    fixed: Mapping[str, Any] = field(default_factory=dict)
    """mergekit parameters pinned by this strategy (not searched)."""

    def check_count(self, k: int) -> None:
        if k < self.min_deltas or (self.max_deltas is not None and k > self.max_deltas):
            want = (
                f"exactly {self.min_deltas}"
                if self.max_deltas == self.min_deltas
                else f"at least {self.min_deltas}"
                + (f" and at most {self.max_deltas}" if self.max_deltas else "")
            )
            raise ValueError(f"strategy {self.name} needs {want} delta(s), got {k}")

    def mergekit_parameters(
        self, params: Mapping[str, Any], k: int, weights: Sequence[float]
    ) -> dict[str, Any]:
        """The mergekit ``parameters`` mapping for this merge (scalars broadcast per input)."""
        out: dict[str, Any] = dict(self.fixed)
        out.update(self.space.contain(params))
        if self.uses_weights:
            out["weight"] = [float(w) for w in weights]
        return out

    def merge_tensor(
        self,
        base: torch.Tensor,
        deltas: Sequence[torch.Tensor],
        weights: Sequence[float],
        params: Mapping[str, Any],
        *,
        generator: torch.Generator | None = None,
        name: str | None = None,
        use_kernel: bool = True,
    ) -> torch.Tensor:
        """Merge one tensor; the result has the base's dtype.

        ``params`` must already be contained in the space (the engine does that once per
        merge, not per tensor).
        """
        if len(weights) != len(deltas):
            raise ValueError(f"{len(deltas)} deltas but {len(weights)} weights")
        if self.kernel is not None and use_kernel:
            out = self.kernel(base, deltas, weights, params, generator)
            return out.to(base.dtype)
        return self._merge_with_mergekit(base, deltas, weights, params, generator, name)

    def _merge_with_mergekit(
        self,
        base: torch.Tensor,
        deltas: Sequence[torch.Tensor],
        weights: Sequence[float],
        params: Mapping[str, Any],
        generator: torch.Generator | None,
        name: str | None,
    ) -> torch.Tensor:
        from mergekit.merge_methods import merge_tensors

        from mergenet.merge_strategies.mergekit_plugin import ensure_registered

        ensure_registered()
        work = torch.promote_types(base.dtype, deltas[0].dtype) if deltas else base.dtype
        models = [(base.to(work) + d.to(work)).to(base.dtype) for d in deltas]
        tensors = [base, *models] if self.base_input else models
        mk_params = dict(self.fixed)
        mk_params.update(params)
        if self.uses_weights:
            mk_params["weight"] = [float(w) for w in weights]
        seed = int(torch.randint(0, 2**62, (1,), generator=generator).item()) if generator else 0
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(seed)
            out = merge_tensors(
                tensors,
                self.mergekit_method,
                parameters=mk_params,
                base_index=0 if self.base_input else None,
                name=name,
            )
        return out.to(base.dtype)


def tensor_seed(seed: int, name: str) -> int:
    """A per-tensor seed, so a tensor's random draws do not depend on merge order or subset."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def tensor_generator(seed: int, name: str) -> torch.Generator:
    return torch.Generator().manual_seed(tensor_seed(seed, name))


__all__ = ["Kernel", "Params", "Strategy", "tensor_generator", "tensor_seed"]
