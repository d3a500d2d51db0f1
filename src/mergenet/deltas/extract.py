"""Extract a delta (fine-tuned − base), in memory or streaming file to file.

The delta is computed in float32 and stored in the parent's dtype, the format validation
expects; for float32 models ``base + delta`` then reproduces the fine-tuned weights exactly
wherever the subtraction was exact (almost everywhere for small fine-tuning steps).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.io import TensorSpec, TensorWriter
from mergenet.deltas.models import ModelSource
from mergenet.protocol.hashes import sha256_file

FORMAT = "mergenet-delta/1"


def _diff(name: str, ft: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    if ft.shape != base.shape:
        raise DeltaValidationError(
            f"{name}: fine-tuned shape {tuple(ft.shape)} != base {tuple(base.shape)}"
        )
    if not base.is_floating_point():
        return torch.zeros_like(base)
    return (ft.float() - base.float()).to(base.dtype)


def extract_delta(
    finetuned: Mapping[str, torch.Tensor], base: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """``finetuned − base`` per tensor; the two must have the same tensor names."""
    if set(finetuned) != set(base):
        missing, extra = sorted(set(base) - set(finetuned)), sorted(set(finetuned) - set(base))
        raise DeltaValidationError(
            f"tensor names differ: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    return {n: _diff(n, finetuned[n], base[n]) for n in base}


def extract_delta_file(
    finetuned: str | Path,
    base: str | Path,
    out: str | Path,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """Stream ``finetuned − base`` into a safetensors file; returns the file's sha256."""
    ft_src, base_src = ModelSource(finetuned), ModelSource(base)
    if set(ft_src.names()) != set(base_src.names()):
        missing = sorted(set(base_src.names()) - set(ft_src.names()))
        extra = sorted(set(ft_src.names()) - set(base_src.names()))
        raise DeltaValidationError(
            f"tensor names differ: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    specs: dict[str, TensorSpec] = base_src.specs()
    meta = {"format": FORMAT, **(metadata or {})}
    with TensorWriter(out, specs, meta) as writer:
        for name in specs:
            writer.write(name, _diff(name, ft_src.get(name), base_src.get(name)))
    return sha256_file(out)
