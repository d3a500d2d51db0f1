"""The artifact folder layout, written once, and the interface every artifact reader meets.

Under a root (the coordinator's store, or a worker's HTTP cache)::

    deltas/ab/abcdef….safetensors     a dense delta, named by the sha256 of its bytes
    deltas/ab/abcdef….lora/           a PEFT adapter folder, named by its adapter sha256
    versions/<state-dict sha256>/     an HF folder (config, tokenizer, model.safetensors, recipe)
    rows/<sha256>.jsonl               a Dharma row set, named by the sha256 of the file

``ArtifactLayout`` is the read side of that layout over a folder; the coordinator's
``ArtifactStore`` adds the crash-safe writes, a worker's ``ArtifactCache`` adds fetching over
HTTP, and a worker that shares the store's disk reads through a plain ``ArtifactLayout``.
What a worker needs of any of them is ``ArtifactSource``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

DENSE_SUFFIX = ".safetensors"
LORA_SUFFIX = ".lora"


class ArtifactSource(Protocol):
    """Where a version's HF folder and a delta (file or adapter folder) are, by content hash."""

    def version_dir(self, version_hash: str) -> Path: ...

    def delta_path(self, sha256: str) -> Path: ...


class ArtifactLayout:
    """Paths of the layout above under ``root`` (no I/O but ``exists`` checks)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def version_dir(self, version_hash: str) -> Path:
        return self.root / "versions" / version_hash

    def delta_folder(self, sha256: str) -> Path:
        return self.root / "deltas" / sha256[:2]

    def delta_file(self, sha256: str, *, lora: bool) -> Path:
        """Where a delta of the given kind is (or would be) stored."""
        return self.delta_folder(sha256) / f"{sha256}{LORA_SUFFIX if lora else DENSE_SUFFIX}"

    def delta_path(self, sha256: str) -> Path:
        """The stored delta: the adapter folder if there is one, else the dense file's path."""
        lora = self.delta_file(sha256, lora=True)
        return lora if lora.exists() else self.delta_file(sha256, lora=False)

    def rows_file(self, sha256: str) -> Path:
        return self.root / "rows" / f"{sha256}.jsonl"
