"""Read a model's tensors lazily from an HF folder (single or sharded safetensors) or a bare
safetensors file — one tensor at a time, so merges stream instead of loading whole models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from mergenet.deltas.hashing import _update
from mergenet.deltas.io import TensorFile, TensorSpec, read_header


class ModelSource:
    """The tensors of a base (or parent) model; ``is_hf_folder`` tells how to write outputs."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if self.path.is_dir():
            self.is_hf_folder = True
            index = self.path / "model.safetensors.index.json"
            if index.exists():
                weight_map = json.loads(index.read_text())["weight_map"]
                files = sorted(set(weight_map.values()))
            elif (self.path / "model.safetensors").exists():
                files = ["model.safetensors"]
            else:
                raise FileNotFoundError(
                    f"{self.path} has no model.safetensors or model.safetensors.index.json "
                    "(only safetensors checkpoints are read, never pickle)"
                )
            self._files = [self.path / f for f in files]
        elif self.path.is_file():
            self.is_hf_folder = False
            self._files = [self.path]
        else:
            raise FileNotFoundError(f"no model at {self.path}")
        self._specs: dict[str, TensorSpec] = {}
        self._where: dict[str, int] = {}
        for idx, f in enumerate(self._files):
            header = read_header(f)
            for name in sorted(header.specs, key=lambda n: header.offsets[n][0]):
                self._specs[name] = header.specs[name]
                self._where[name] = idx
        self._open: dict[int, TensorFile] = {}

    def files(self) -> list[Path]:
        """The safetensors files holding the weights (one, or a sharded model's shards)."""
        return list(self._files)

    def names(self) -> list[str]:
        return list(self._specs)

    def specs(self) -> dict[str, TensorSpec]:
        return dict(self._specs)

    def get(self, name: str) -> torch.Tensor:
        idx = self._where[name]
        if idx not in self._open:
            self._open[idx] = TensorFile(self._files[idx])
        return self._open[idx].get(name)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {n: self.get(n) for n in self.names()}

    def sha256(self) -> str:
        """The canonical state-dict hash (same as ``state_dict_sha256`` of the loaded tensors)."""
        h = hashlib.sha256()
        for name in sorted(self._specs):
            _update(h, name, self.get(name))
        return h.hexdigest()
