"""PEFT LoRA adapters as delta sources, expanded one tensor at a time.

A LoRA adapter stores, per adapted module, low-rank factors A (r × in) and B (out × r); the
module's weight delta is ``scaling · B @ A`` (transposed for ``fan_in_fan_out`` layers and for
embeddings), with ``scaling = lora_alpha / r`` or ``lora_alpha / √r`` under rsLoRA and
per-module overrides from ``rank_pattern`` / ``alpha_pattern`` — exactly PEFT's
``get_delta_weight``. Expanding on demand keeps memory at one dense tensor, never the whole
model; the tests compare against PEFT's own ``merge_and_unload``.

The config is parsed by :mod:`mergenet.deltas.adapter_config` (strict schema, pattern keys
matched literally, never compiled). :meth:`LoraDelta.check_against` checks an adapter against
its parent *from the headers alone*, before any product is formed: every target module exists
in the parent, every adapted module is a target, and each factor's shape fits the parent
weight and the configured rank — so a hostile pair of factors cannot ask for a huge B @ A.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch

from mergenet.deltas.adapter_config import AdapterConfig, matches_module, parse_adapter_config
from mergenet.deltas.errors import DeltaValidationError
from mergenet.deltas.io import TensorFile, TensorSpec, read_header

PREFIX = "base_model.model."
_LINEAR = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
_EMBED = re.compile(r"^(?P<module>.+)\.lora_embedding_(?P<ab>[AB])$")
_UNSUPPORTED = ("use_dora", "lora_magnitude_vector")


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
        self.config: AdapterConfig = parse_adapter_config(cfg_path.read_bytes())
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
        return self.config.scaling_for(target.removesuffix(".weight"))

    def check_against(self, parent: Mapping[str, TensorSpec]) -> None:
        """Targets exist in the parent, adapted modules are targets, factor shapes fit."""
        modules = [n.removesuffix(".weight") for n in parent if n.endswith(".weight")]
        for t in self.config.target_modules:
            if not any(matches_module(t, m) for m in modules):
                names = sorted({m.rsplit(".", 1)[-1] for m in modules})
                raise DeltaValidationError(
                    f"adapter_config.json: target module {t!r} is not a module of the parent "
                    f"model (its module names end in {names[:12]})"
                )
        for target in self._factors:
            module = target.removesuffix(".weight")
            if not any(matches_module(t, module) for t in self.config.target_modules):
                raise DeltaValidationError(
                    f"adapter has LoRA factors for {module!r}, which target_modules "
                    f"{self.config.target_modules[:5]} does not name"
                )
            if target not in parent:
                raise DeltaValidationError(
                    f"adapter adapts {module!r}, which the parent model does not have"
                )
            self._check_shapes(target, parent[target])
        for name in self._full:
            if name not in parent:
                raise DeltaValidationError(f"adapter saves {name!r}, which the parent lacks")
            if self.header.specs[self._full[name]].shape != parent[name].shape:
                raise DeltaValidationError(
                    f"adapter saves {name!r} with a shape other than the parent's"
                )

    def _check_shapes(self, target: str, spec: TensorSpec) -> None:
        module = target.removesuffix(".weight")
        shape = spec.shape
        if len(shape) != 2:
            raise DeltaValidationError(f"{module!r} is not a 2-D weight; LoRA cannot adapt it")
        if self._kind[target] == "embedding" or self.config.fan_in_fan_out:
            shape = (shape[1], shape[0])
        r = self.config.rank_for(module)
        a = self.header.specs[self._factors[target]["A"]].shape
        b = self.header.specs[self._factors[target]["B"]].shape
        if a != (r, shape[1]) or b != (shape[0], r):
            raise DeltaValidationError(
                f"{module!r}: LoRA factors A{list(a)} and B{list(b)} do not fit the parent "
                f"weight {list(spec.shape)} at rank {r} (expected A{[r, shape[1]]}, "
                f"B{[shape[0], r]}); check r, rank_pattern and fan_in_fan_out"
            )

    def get(self, name: str) -> torch.Tensor | None:
        if name in self._full:
            return self._file.get(self._full[name]).float() - self._base.get(name).float()  # type: ignore[union-attr]
        ab = self._factors.get(name)
        if ab is None:
            return None
        a = self._file.get(ab["A"]).float()
        b = self._file.get(ab["B"]).float()
        delta = (b @ a) * self.scaling(name)
        if self._kind[name] == "embedding" or self.config.fan_in_fan_out:
            delta = delta.T
        return delta.contiguous()
