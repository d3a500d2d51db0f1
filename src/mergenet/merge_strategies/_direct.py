"""Strategies that merge in memory with their own code but are not the loop's hot path.

``registry.fast_strategies()`` — and with it the loop's default strategy set
(``coordinator.loop.default_strategies``) — is every strategy with a ``kernel``. The paper
merges (TSV-Merge, Iso-C, Iso-CTS, TALL consensus, PCB) have in-memory implementations,
but measured on the world's 192-wide Llama with all eight contributors on the loaded 2-core
machine they took 2–68 s per merge (linear: 0.04 s; README, table of the paper merges), and
at defaults none beat linear's held-out 0.747 (TSV 0.743, Iso-CTS 0.742, Iso-C 0.739), so
they stay out of the default set, where each candidate build would cost that much and every
seeded run's strategy draws would change. A ``DirectStrategy`` therefore leaves ``kernel``
empty and runs ``method`` (a ``Kernel``) from ``merge_tensor``; name it in
``LoopSettings.strategies`` to let the loop draw it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mergenet.merge_strategies.strategy import Kernel, Strategy


@dataclass(frozen=True)
class DirectStrategy(Strategy):
    """A strategy merged by ``method`` in memory, outside the loop's default set."""

    method: Kernel | None = None

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
        assert self.method is not None, f"{self.name} has no method"
        return self.method(base, deltas, weights, params, generator).to(base.dtype)
