"""Artifacts served to remote evaluation workers by content hash (the routes stay thin).

A Celery worker on another machine gets a recipe and a sample spec, never weights; it fetches
what the recipe names from here and checks every byte against the hash it asked for
(:mod:`mergenet.workers.fetch`). Two kinds of artifact:

* a **delta** by its sha256: a dense delta is the stored ``.safetensors`` file itself; a LoRA
  adapter (stored as a folder) goes out as a ``.tar.gz`` of its two files, whose hash is
  :func:`mergenet.protocol.signing.adapter_sha256`;
* a **version** by its state-dict hash: ``GET /api/versions/{hash}/weights``, an HF folder as
  ``.tar.gz``, built once per version and kept (:class:`VersionArchives`).

Rows are never served: the rows a decision is scored on are drawn fresh and private per
evaluation and travel inside the task (:mod:`mergenet.coordinator.decision_rows`), and the
held-out set is for reports only. (Until issue 16 ``GET /api/rows/{sha256}`` served the dev
and held-out files to anyone, and a contributor who trained on them was paid 5x.)

Only what the coordinator already holds is served; the only write is the archive cache.
"""

from __future__ import annotations

import io
import os
import tarfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mergenet.coordinator.artifacts import ArtifactStore
from mergenet.errors import NotFound
from mergenet.protocol.hashes import sha256_hex

DENSE, LORA = "dense", "lora"


def write_archive(folder: Path, name: str, out: BinaryIO) -> None:
    """A gzipped tar of the files of ``folder`` under ``name/`` (an HF folder loads with
    ``from_pretrained`` after extraction). Files in name order, so the listing is stable."""
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for f in sorted(folder.iterdir()):
            if f.is_file():
                tar.add(f, arcname=f"{name}/{f.name}")


def archive(folder: Path, name: str) -> bytes:
    """:func:`write_archive` into memory (small folders: a LoRA adapter)."""
    buf = io.BytesIO()
    write_archive(folder, name, buf)
    return buf.getvalue()


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
    """The stored delta with this content hash (NotFound if the store has none)."""
    sha = sha256_hex(sha256, "delta sha256")
    path = store.delta_path(sha)
    if not path.exists():
        raise NotFound(f"no delta with sha256 {sha} in the artifact store")
    return DeltaArtifact(sha, LORA if path.is_dir() else DENSE, path)


class VersionArchives:
    """Each version's weights as ``.tar.gz``, built on first request and kept in ``folder``.

    A version is named by the hash of its weights, so its archive never goes stale: one build
    per version for the life of the data dir (before: a 9.5 MB gzip rebuilt on every request,
    ~1 s of CPU each). A build writes a private temporary file and renames it into place, so
    a reader sees a whole archive or none, and concurrent first requests build it once (one
    lock per version).
    """

    def __init__(self, store: ArtifactStore, folder: Path):
        self.store = store
        self.folder = Path(folder)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.builds = 0
        """Archives built by this object (tests and logs read it)."""

    def path(self, version_hash: str, weights_path: str) -> Path:
        """The archive of the version stored at ``weights_path`` (relative to the store)."""
        key = sha256_hex(version_hash, "version hash")
        out = self.folder / f"{key}.tar.gz"
        if out.is_file():
            return out
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if not out.is_file():
                self._build(self.store.root / weights_path, key, out)
        return out

    def _build(self, src: Path, key: str, out: Path) -> None:
        if not src.is_dir():
            raise NotFound(f"the weights of version {key[:16]}… are not in the artifact store")
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{key}.{uuid.uuid4().hex}.tmp"
        try:
            with tmp.open("wb") as fh:
                write_archive(src, key[:16], fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
        self.builds += 1
