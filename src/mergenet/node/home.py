"""Where a node keeps its things: the keystore, pulled versions, fine-tune outputs.

Everything sits under the shared settings' directories (``MERGENET_DATA_DIR`` for what must
not be lost, ``MERGENET_CACHE_DIR`` for what can be downloaded again), so one environment
variable moves a whole node, and tests run several nodes side by side.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mergenet.config import Settings


@dataclass(frozen=True)
class NodeHome:
    data_dir: Path
    cache_dir: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> NodeHome:
        return cls(settings.data_dir / "node", settings.cache_dir / "node")

    @property
    def keystore(self) -> Path:
        return self.data_dir / "keystore.json"

    @property
    def versions(self) -> Path:
        return self.cache_dir / "versions"

    def version_dir(self, version_hash: str) -> Path:
        return self.versions / version_hash

    @property
    def current_link(self) -> Path:
        """A text file naming the last pulled version (what ``finetune`` starts from)."""
        return self.cache_dir / "current-version"

    @property
    def outputs(self) -> Path:
        return self.data_dir / "finetunes"
