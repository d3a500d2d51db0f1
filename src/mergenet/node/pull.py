"""``pull``: the coordinator's current core version as a local HF folder, verified by hash.

The archive is unpacked into a temporary folder next to the cache and renamed into place
only after its canonical state-dict hash equals the version hash the coordinator announced,
so the cache never holds a partial or tampered model.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mergenet.node.client import CoordinatorClient, Progress
from mergenet.node.errors import NodeError
from mergenet.node.home import NodeHome


@dataclass(frozen=True)
class Pulled:
    version_hash: str
    path: Path
    cached: bool
    score: float | None


def pull_current(client: CoordinatorClient, home: NodeHome, progress: Progress) -> Pulled:
    meta = client.current_version()
    version_hash = str(meta["hash"])
    target = home.version_dir(version_hash)
    cached = (target / "config.json").exists()
    if not cached:
        _download(client, version_hash, target, progress)
    home.current_link.parent.mkdir(parents=True, exist_ok=True)
    home.current_link.write_text(version_hash + "\n")
    return Pulled(version_hash, target, cached, meta.get("score"))


def current_pulled(home: NodeHome) -> Pulled:
    """The version the last ``pull`` fetched (what ``finetune`` starts from)."""
    if not home.current_link.exists():
        raise NodeError("no version pulled yet: run `mergenet node pull` first")
    version_hash = home.current_link.read_text().strip()
    path = home.version_dir(version_hash)
    if not (path / "config.json").exists():
        raise NodeError(f"the pulled version {version_hash[:12]} is gone from {path}: pull again")
    return Pulled(version_hash, path, True, None)


def _download(
    client: CoordinatorClient, version_hash: str, target: Path, progress: Progress
) -> None:
    from mergenet.deltas.models import ModelSource

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".pull-") as tmp:
        archive = Path(tmp) / "weights.tar.gz"
        with archive.open("wb") as out:
            client.download_weights(version_hash, out, progress)
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(archive) as tar:
            tar.extractall(unpacked, filter="data")
        folders = [p for p in unpacked.iterdir() if p.is_dir()]
        if len(folders) != 1:
            raise NodeError("the coordinator's archive is not one model folder: pull again")
        got = ModelSource(folders[0]).sha256()
        if got != version_hash:
            raise NodeError(
                f"the downloaded weights hash to {got[:12]}, not the announced {version_hash[:12]}:"
                " the download was corrupted or tampered with; pull again"
            )
        if target.exists():
            shutil.rmtree(target)
        folders[0].rename(target)
