"""Artifacts served to remote evaluation workers by content hash (the routes stay thin).

A Celery worker on another machine gets a recipe and a sample spec, never weights; it fetches
what the recipe names from here and checks every byte against the hash it asked for
(:mod:`mergenet.distributed.fetch`). Three kinds of artifact:

* a **delta** by its sha256: a dense delta is the stored ``.safetensors`` file itself; a LoRA
  adapter (stored as a folder) goes out as a ``.tar.gz`` of its two files, whose hash is
  :func:`mergenet.coordinator.signing.adapter_sha256`;
* a **version** by its state-dict hash: the existing ``GET /api/versions/{hash}/weights``
  archive (an HF folder);
* a **row set** (Dharma JSONL) by the sha256 of the file: a worker's task names row sets by
  the name the loop uses ("dev"), and the worker env maps that name to the content hash, so a
  coordinator restarted on other rows can never be answered from a stale cache.

Only what the coordinator already holds is served; nothing here writes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.coordinator.queries import NotFound, archive

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

DENSE, LORA = "dense", "lora"


def content_hash(value: str, what: str) -> str:
    """The lower-case 64-hex form of ``value``; a clear error for anything else."""
    v = value.lower().removeprefix("0x")
    if not _HEX64.match(v):
        raise BadHash(f"{what} must be a sha256 (64 hex digits), got {value[:80]!r}")
    return v


class BadHash(ValueError):
    """A path parameter that is not a sha256; the API answers 422 with this message."""


@dataclass(frozen=True)
class DeltaArtifact:
    """One stored delta as it goes over the wire."""

    sha256: str
    kind: str
    """``dense`` (body is the safetensors file) or ``lora`` (body is a tar.gz of the folder)."""
    path: Path

    def body(self) -> bytes:
        """The LoRA archive (dense deltas are streamed from ``path`` instead)."""
        return archive(self.path, self.sha256)


def delta(store: ArtifactStore, sha256: str) -> DeltaArtifact:
    """The stored delta with this content hash (404 if the store has none)."""
    sha = content_hash(sha256, "delta sha256")
    path = store.delta_path(sha)
    if not path.exists():
        raise NotFound(f"no delta with sha256 {sha} in the artifact store")
    return DeltaArtifact(sha, LORA if path.is_dir() else DENSE, path)


class RowSets:
    """The Dharma row sets this coordinator scores on, by name and by content hash."""

    def __init__(self, paths: dict[str, Path]):
        from mergenet.deltas.hashing import sha256_file

        self.paths = {name: Path(p) for name, p in paths.items()}
        self.hashes = {name: sha256_file(p) for name, p in self.paths.items()}
        self._by_hash = {h: self.paths[n] for n, h in self.hashes.items()}

    def path(self, sha256: str) -> Path:
        """The JSONL file with this content hash (only the coordinator's own row sets)."""
        sha = content_hash(sha256, "row set sha256")
        if sha not in self._by_hash:
            raise NotFound(
                f"no row set with sha256 {sha}; this coordinator serves {sorted(self.hashes)}"
            )
        return self._by_hash[sha]
