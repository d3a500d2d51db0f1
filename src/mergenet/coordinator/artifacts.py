"""Content-addressed artifact store on disk: deltas by file sha256, versions by weights hash.

The layout is :mod:`mergenet.protocol.artifacts` (deltas, versions), plus ``incoming/`` for
uploads being received and validated (never read back) and ``sketches/<sha256>.npz``, each
stored delta's linear sketch (:mod:`mergenet.coordinator.copies`; derived data, coordinator
only: a missing or torn one is sketched again from the delta).

Every write goes to a temporary name in the same file system, is fsynced, then renamed into
place, so a reader (or a restart after kill -9) sees a complete artifact or none. An artifact
is only *referenced* by the database after it is complete, and an artifact without a
database row is harmless garbage that ``sweep_incoming`` removes.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from mergenet.protocol.artifacts import ArtifactLayout


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    if path.is_file():
        with path.open("rb") as fh:
            os.fsync(fh.fileno())
        return
    for p in path.rglob("*"):
        if p.is_file():
            with p.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


class ArtifactStore(ArtifactLayout):
    """Deltas and version folders, content-addressed (see module docstring)."""

    def __init__(self, root: str | Path):
        super().__init__(root)
        for sub in ("deltas", "versions", "incoming", "sketches"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- paths (delta_path, version_dir: ArtifactLayout) ----------------------------------
    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def sketch_path(self, sha256: str) -> Path:
        return self.root / "sketches" / f"{sha256}.npz"

    def incoming(self, suffix: str = "") -> Path:
        """A fresh private path for an upload being received."""
        return self.root / "incoming" / f"{uuid.uuid4().hex}{suffix}"

    # -- writes --------------------------------------------------------------------------
    def put_delta(self, src: Path, sha256: str) -> Path:
        """Move a validated upload (file or adapter folder) into place; idempotent."""
        dst = self.delta_file(sha256, lora=src.is_dir())
        if dst.exists():
            _remove(src)
            return dst
        dst.parent.mkdir(parents=True, exist_ok=True)
        _fsync_tree(src)
        os.replace(src, dst)
        _fsync_dir(dst.parent)
        return dst

    def put_sketch(self, sha256: str, data: bytes) -> Path:
        """Write a delta's sketch under a temporary name, then rename it into place (no fsync:
        it can be rebuilt from the delta, and a torn file is detected on reading)."""
        dst = self.sketch_path(sha256)
        tmp = dst.with_name(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dst)
        return dst

    def put_version_dir(self, src: Path, version_hash: str) -> Path:
        """Move a fully written version folder into place; idempotent."""
        dst = self.version_dir(version_hash)
        if dst.exists():
            _remove(src)
            return dst
        _fsync_tree(src)
        os.replace(src, dst)
        _fsync_dir(dst.parent)
        return dst

    def staging_dir(self) -> Path:
        """A temporary folder for building a version (same file system as ``versions``)."""
        path = self.root / "incoming" / f"build-{uuid.uuid4().hex}"
        path.mkdir(parents=True)
        return path

    def sweep_incoming(self) -> int:
        """Remove leftovers of interrupted uploads and builds (call on start only)."""
        n = 0
        for p in (self.root / "incoming").iterdir():
            _remove(p)
            n += 1
        return n

    def snapshot(self) -> dict[str, int]:
        """Every stored file (relative path → size): tests compare it before and after."""
        return {
            self.relative(p): p.stat().st_size
            for p in sorted(self.root.rglob("*"))
            if p.is_file() and p.relative_to(self.root).parts[0] != "incoming"
        }


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
