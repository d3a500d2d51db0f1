"""Where a delta's tensors come from: a dense safetensors file, memory, or a LoRA adapter.

A ``DeltaSource`` answers ``get(name)`` one tensor at a time (``None`` = this contribution
does not change that tensor), so merges and validation never materialise a whole delta.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from mergenet.deltas.io import TensorFile


@runtime_checkable
class DeltaSource(Protocol):
    def names(self) -> list[str]: ...

    def get(self, name: str) -> torch.Tensor | None: ...


class DenseDelta:
    """A dense delta stored as safetensors (read lazily, memory-mapped)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file = TensorFile(self.path)
        self._names = set(self._file.names())

    def names(self) -> list[str]:
        return sorted(self._names)

    def get(self, name: str) -> torch.Tensor | None:
        return self._file.get(name) if name in self._names else None


class MemoryDelta:
    """A delta held as an in-memory state dict (the loop's hot path)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]):
        self.tensors = tensors

    def names(self) -> list[str]:
        return sorted(self.tensors)

    def get(self, name: str) -> torch.Tensor | None:
        return self.tensors.get(name)


def as_source(delta: DeltaSource | Mapping[str, torch.Tensor] | str | Path) -> DeltaSource:
    """Accept a source, a state dict, a ``.safetensors`` path or a PEFT adapter folder."""
    if isinstance(delta, str | Path):
        p = Path(delta)
        if p.is_dir():
            from mergenet.deltas.lora import LoraDelta

            return LoraDelta(p)
        return DenseDelta(p)
    if isinstance(delta, Mapping):
        return MemoryDelta(delta)
    return delta
