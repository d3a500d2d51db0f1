"""Settings for every mergenet component, read from the environment (prefix ``MERGENET_``).

One settings object keeps the embedded default (SQLite, in-process pool, a chain started by
mergenet) and the scaled-out deployment (PostgreSQL, Redis/Celery, any JSON-RPC node) one
environment variable apart.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".mergenet"


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "mergenet"


class Settings(BaseSettings):
    """All knobs; ``MERGENET_<NAME>`` overrides each field."""

    model_config = SettingsConfigDict(env_prefix="MERGENET_", extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir)
    """Coordinator state: database file, artifact store, chain deployment, keystores."""

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Rebuildable things: the model world, pulled core versions, worker caches."""

    world_seed: int = 0
    """The one seed the whole model world is derived from."""

    database_url: str | None = None
    """SQLAlchemy URL; ``None`` means a SQLite file in ``data_dir``."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    chain_url: str | None = None
    """JSON-RPC URL of an existing node; ``None`` means the local anvil mergenet starts."""
    chain_id: int = 31337
    network_id: str | None = None
    """32 bytes as hex naming this coordinator's network in the EIP-712 signing domain;
    ``None``: made randomly on first open and kept in ``data_dir/network_id``."""
    keystore_password: SecretStr | None = None
    upload_bond_wei: int | None = None
    """Bond per upload the UploadBond contract is deployed with by ``mergenet chain up`` (0: no
    bond; fixed on chain at deployment). ``None``: 0.01 ether on the anvil mergenet starts
    itself, 0 on a node named by ``chain_url``, whose ether has a price only its operator knows.
    Why 0.01: see the README's rewards text."""

    coordinator_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000

    @property
    def world_root(self) -> Path:
        return self.cache_dir / "worlds"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'mergenet.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings`` instead."""
    return Settings()
