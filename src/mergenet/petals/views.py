"""Model folders the Petals side reads: a transformers-4.34 config plus (some of) the weights.

The config translation lives in ``mergenet.petals.side.compat`` (pure Python, shared by both
sides; see there for why). Folders are "views": the translated config plus weights, either
symlinks to the source files (the whole model, no copy) or a ``model.safetensors`` holding
only the tensors a peer serves.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from mergenet.petals.side.compat import UnsupportedConfig, link_view, petals_config

__all__ = [
    "LAYER_PREFIX",
    "UnsupportedConfig",
    "block_names",
    "client_names",
    "link_view",
    "num_blocks",
    "petals_config",
    "tensor_view",
    "write_config",
]

LAYER_PREFIX = "model.layers."
"""Petals' Llama servers load block ``i`` from the tensors under ``model.layers.{i}.``."""


def block_names(names: list[str], start: int, end: int) -> list[str]:
    """Tensor names of blocks ``start <= i < end``."""
    keep = []
    for n in names:
        if n.startswith(LAYER_PREFIX):
            index = int(n[len(LAYER_PREFIX) :].split(".", 1)[0])
            if start <= index < end:
                keep.append(n)
    return keep


def client_names(names: list[str]) -> list[str]:
    """Tensor names the Petals client holds itself: everything outside the blocks."""
    return [n for n in names if not n.startswith(LAYER_PREFIX)]


def num_blocks(model_dir: Path) -> int:
    return int(json.loads((Path(model_dir) / "config.json").read_text())["num_hidden_layers"])


def write_config(src_dir: Path, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = petals_config(json.loads((Path(src_dir) / "config.json").read_text()))
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    return cfg


def tensor_view(src_dir: Path, out_dir: Path, tensors: Mapping[str, torch.Tensor]) -> Path:
    """A view holding only ``tensors`` (e.g. one peer's blocks of a candidate)."""
    from safetensors.torch import save_file

    write_config(src_dir, out_dir)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(out_dir / "model.safetensors"),
        metadata={"format": "pt"},
    )
    return out_dir
