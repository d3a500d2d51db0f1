"""PEFT LoRA adapters as delta sources, expanded one tensor at a time.

A LoRA adapter stores, per adapted module, low-rank factors A (r × in) and B (out × r); the
module's weight delta is ``scaling · B @ A`` (transposed for ``fan_in_fan_out`` layers and for
embeddings), with ``scaling = lora_alpha / r`` or ``lora_alpha / √r`` under rsLoRA and
per-module overrides from ``rank_pattern`` / ``alpha_pattern`` — exactly PEFT's
``get_delta_weight``. Expanding on demand keeps memory at one dense tensor, never the whole
model; the tests compare against PEFT's own ``merge_and_unload``.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.io import TensorFile, read_header

PREFIX = "base_model.model."
_LINEAR = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
_EMBED = re.compile(r"^(?P<module>.+)\.lora_embedding_(?P<ab>[AB])$")
_UNSUPPORTED = ("use_dora", "lora_magnitude_vector")


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's ``get_pattern_key``: a pattern matches a module name suffix at a dot boundary."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


class LoraDelta:
    """A PEFT LoRA adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)."""

    def __init__(self, folder: str | Path, base: object | None = None):
        self.folder = Path(folder)
        cfg_path = self.folder / "adapter_config.json"
        weights = self.folder / "adapter_model.safetensors"
        if not cfg_path.exists() or not weights.exists():
            raise DeltaValidationError(
                f"{self.folder}: a LoRA adapter needs adapter_config.json and "
                "adapter_model.safetensors (pickled adapter_model.bin is not accepted)"
            )
        cfg = json.loads(cfg_path.read_text())
        if cfg.get("peft_type", "LORA") != "LORA":
            raise DeltaValidationError(
                f"{self.folder}: peft_type {cfg.get('peft_type')} is not LORA"
            )
        if cfg.get("use_dora"):
            raise DeltaValidationError(
                f"{self.folder}: DoRA adapters are not supported; train plain LoRA"
            )
        if cfg.get("bias", "none") != "none":
            raise DeltaValidationError(
                f"{self.folder}: bias={cfg.get('bias')!r} is not supported; use bias='none'"
            )
        self.config = cfg
        self.header = read_header(weights)
        self._file = TensorFile(weights)
        self._base = base
        self._factors: dict[str, dict[str, str]] = {}
        self._kind: dict[str, str] = {}
        self._full: dict[str, str] = {}
        for key in self.header.specs:
            if any(u in key for u in _UNSUPPORTED):
                raise DeltaValidationError(f"{self.folder}: {key} is a DoRA tensor; not supported")
            name = key.removeprefix(PREFIX)
            if ".base_layer." in name:
                continue  # a frozen base weight PEFT saves with adapted embeddings: no change
            m = _LINEAR.match(name) or _EMBED.match(name)
            if m:
                target = m["module"] + ".weight"
                self._factors.setdefault(target, {})[m["ab"]] = key
                self._kind[target] = "embedding" if "lora_embedding" in name else "linear"
            else:
                self._full[name] = key  # modules_to_save: a full replacement weight
        for target, ab in self._factors.items():
            if set(ab) != {"A", "B"}:
                raise DeltaValidationError(
                    f"{self.folder}: {target} has lora_{next(iter(ab))} but not its pair"
                )
        if self._full and base is None:
            raise DeltaValidationError(
                f"{self.folder}: the adapter saves full modules {sorted(self._full)}; "
                "pass the base model to turn them into deltas"
            )

    def names(self) -> list[str]:
        return sorted(set(self._factors) | set(self._full))

    def scaling(self, target: str) -> float:
        module = target.removesuffix(".weight")
        r = _pattern_value(self.config.get("rank_pattern") or {}, module, self.config["r"])
        alpha = _pattern_value(
            self.config.get("alpha_pattern") or {}, module, self.config["lora_alpha"]
        )
        return alpha / math.sqrt(r) if self.config.get("use_rslora") else alpha / r

    def get(self, name: str) -> torch.Tensor | None:
        if name in self._full:
            return self._file.get(self._full[name]).float() - self._base.get(name).float()  # type: ignore[union-attr]
        ab = self._factors.get(name)
        if ab is None:
            return None
        a = self._file.get(ab["A"]).float()
        b = self._file.get(ab["B"]).float()
        delta = (b @ a) * self.scaling(name)
        if self._kind[name] == "embedding" or self.config.get("fan_in_fan_out"):
            delta = delta.T
        return delta.contiguous()
