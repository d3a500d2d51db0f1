"""A transformers-5 model config made readable, with the same meaning, by transformers 4.34.

transformers 5 writes ``rope_parameters`` (4.34 reads ``rope_theta``/``rope_scaling``) and
``dtype`` (4.34: ``torch_dtype``); 4.34 ignores keys it does not know without a word, so a
model with a non-default rope base would be served wrong. Pure Python: both sides import it
(the main side to write Petals views, the Petals server to read a raw folder).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

SUPPORTED_MODEL_TYPES = ("llama",)


class UnsupportedConfig(ValueError):
    """A config the Petals side (transformers 4.34) would read differently."""


def petals_config(config: Mapping) -> dict:
    """Translate the fields 4.34 needs; refuse what it cannot express."""
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


def needs_translation(model_dir: Path) -> bool:
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return petals_config(cfg) != cfg


def link_view(src_dir: Path, out_dir: Path) -> Path:
    """Translated config + the source's weight files symlinked (no copy)."""
    src_dir, out_dir = Path(src_dir).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = petals_config(json.loads((src_dir / "config.json").read_text()))
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    for f in src_dir.iterdir():
        if f.name.endswith(".safetensors") or f.name == "model.safetensors.index.json":
            target = out_dir / f.name
            if target.is_symlink() or target.exists():
                target.unlink()
            os.symlink(f, target)
    return out_dir


def readable_folder(model_dir: str) -> str:
    """``model_dir`` itself, or a temporary translated view of it if 4.34 would misread it."""
    if not os.path.isdir(model_dir) or not needs_translation(Path(model_dir)):
        return model_dir
    return str(link_view(Path(model_dir), Path(tempfile.mkdtemp(prefix="petals-view-"))))
