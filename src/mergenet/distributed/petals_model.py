"""Model folders the Petals side reads: a transformers-4.34 config plus (some of) the weights.

transformers 5 writes ``rope_parameters`` (4.34 reads ``rope_theta``/``rope_scaling``) and
``dtype`` (4.34: ``torch_dtype``); an unknown key is ignored silently by 4.34, so a world with
a non-default rope base would be served wrong without a word. ``petals_config`` translates the
fields 4.34 needs and refuses what it cannot express. Folders are "views": the translated
config plus weights, either a symlink to the source file (the whole model, no copy) or a
``model.safetensors`` holding only the tensors a peer serves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

LAYER_PREFIX = "model.layers."
"""Petals' Llama servers load block ``i`` from the tensors under ``model.layers.{i}.``."""

SUPPORTED_MODEL_TYPES = ("llama",)


class UnsupportedConfig(ValueError):
    """A config the Petals side (transformers 4.34) would read differently."""


def petals_config(config: Mapping) -> dict:
    """A transformers-5 config dict made readable, with the same meaning, by transformers 4.34."""
    out = dict(config)
    if out.get("model_type") not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedConfig(f"model_type {out.get('model_type')!r}: Petals side serves llama")
    rope = out.pop("rope_parameters", None)
    if rope is not None:
        rope_type = rope.get("rope_type", "default")
        out["rope_theta"] = float(rope.get("rope_theta", 10000.0))
        if rope_type == "default":
            out["rope_scaling"] = None
        elif rope_type in ("linear", "dynamic"):
            out["rope_scaling"] = {"type": rope_type, "factor": float(rope["factor"])}
        else:
            raise UnsupportedConfig(f"rope_type {rope_type!r} has no transformers 4.34 form")
    heads, hidden = out["num_attention_heads"], out["hidden_size"]
    head_dim = out.get("head_dim")
    if head_dim is not None and head_dim * heads != hidden:
        raise UnsupportedConfig(f"head_dim {head_dim} × {heads} heads ≠ hidden {hidden}")
    if "dtype" in out:
        out["torch_dtype"] = out.pop("dtype")
    return out


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


def link_view(src_dir: Path, out_dir: Path) -> Path:
    """A view of a whole model: translated config, weight files symlinked (no copy)."""
    src_dir = Path(src_dir).resolve()
    write_config(src_dir, out_dir)
    for f in src_dir.iterdir():
        if f.name.endswith(".safetensors") or f.name == "model.safetensors.index.json":
            target = out_dir / f.name
            if target.is_symlink() or target.exists():
                target.unlink()
            os.symlink(f, target)
    return out_dir


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
