"""Strategies whose merge depends on where a tensor sits in the network (LiNeS, layer-wise
task arithmetic).

The per-tensor ``Kernel`` sees one tensor and no name, so a depth-aware strategy is a
``DepthStrategy``: the engine hands it the model's tensor names once per merge
(``bind_names``, a copy carrying each name's depth), and its ``merge_tensor`` looks the depth
up by name. Depth is ``l / (L − 1)`` for a tensor of block l of L (the index after
``layers.`` / ``h.`` / ``blocks.`` / ``layer.`` in the checkpoint name, as Llama, GPT-2,
GPT-NeoX, Qwen, Gemma and Mistral name them); outside the blocks, the token and position
embeddings (a name containing ``embed``, ``wte`` or ``wpe``) sit at depth 0 — the input end —
and everything else (the final norm, ``lm_head``) at depth 1. A model with one block has
every block tensor at depth 0. A name the strategy was not bound to is an error: guessing a
depth would silently merge with the wrong scale.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mergenet.merge_strategies.strategy import Strategy

_BLOCK = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")
_INPUT_END = ("embed", "wte", "wpe")


def block_index(name: str) -> int | None:
    m = _BLOCK.search(name)
    return int(m.group(1)) if m else None


def depth_map(names: Iterable[str]) -> dict[str, float]:
    """Each tensor name's depth in [0, 1] (see module docstring)."""
    names = list(names)
    blocks = {n: block_index(n) for n in names}
    top = max((b for b in blocks.values() if b is not None), default=0)
    out: dict[str, float] = {}
    for n, b in blocks.items():
        if b is not None:
            out[n] = b / top if top > 0 else 0.0
        else:
            out[n] = 0.0 if any(k in n for k in _INPUT_END) else 1.0
    return out


@dataclass(frozen=True)
class DepthStrategy(Strategy):
    """A strategy whose per-tensor merge takes the tensor's depth (see module docstring)."""

    depths: Mapping[str, float] = field(default_factory=dict, compare=False, repr=False)

    def bind_names(self, names: Iterable[str]) -> DepthStrategy:
        return dataclasses.replace(self, depths=depth_map(names))

    def depth(self, name: str | None) -> float:
        if name is None or name not in self.depths:
            raise ValueError(
                f"strategy {self.name} needs the model's tensor names (merge through the "
                f"engine); no depth for {name!r}"
            )
        return self.depths[name]

    def merge_at_depth(
        self,
        base: torch.Tensor,
        deltas: Sequence[torch.Tensor],
        weights: Sequence[float],
        params: Mapping[str, Any],
        depth: float,
    ) -> torch.Tensor:
        raise NotImplementedError

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
        if len(weights) != len(deltas):
            raise ValueError(f"{len(deltas)} deltas but {len(weights)} weights")
        out = self.merge_at_depth(base, deltas, weights, params, self.depth(name))
        return out.to(base.dtype)
