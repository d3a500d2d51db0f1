"""This coordinator's network id and EIP-712 signing domain (what binds an upload to it).

The network id is 32 random bytes made on the coordinator's first open and kept in
``<data_dir>/network_id`` (64 hex digits), so it survives restarts and two coordinators on the
same chain id never share one; ``MERGENET_NETWORK_ID`` (``Settings.network_id``) sets it
instead. The domain adds the chain id and the distributor contract (the zero address when the
coordinator runs without a chain): see :mod:`mergenet.protocol.signing`.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from mergenet.config import Settings
from mergenet.protocol.signing import ZERO_ADDRESS, SigningDomain

NETWORK_ID_FILE = "network_id"


def network_id(data_dir: Path, configured: str | None = None) -> str:
    """``configured`` if given, else the persisted id, made (atomically) on first use."""
    if configured:
        return configured
    path = data_dir / NETWORK_ID_FILE
    if not path.exists():
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(secrets.token_hex(32) + "\n")
        os.replace(tmp, path)
    return path.read_text().strip()


def signing_domain(settings: Settings, distributor: str | None) -> SigningDomain:
    """The domain this coordinator verifies uploads with (and serves in ``GET /api/info``);
    ``distributor`` None: the coordinator runs without a chain (the zero address)."""
    return SigningDomain(
        settings.chain_id,
        distributor or ZERO_ADDRESS,
        network_id(settings.data_dir, settings.network_id),
    )
