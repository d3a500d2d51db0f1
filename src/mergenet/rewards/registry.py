"""Record accepted core versions on chain (the VersionRegistry) and read the lineage back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_utils import decode_hex, to_hex

from mergenet.rewards.client import RewardContracts, transact

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount


@dataclass(frozen=True)
class VersionRecord:
    version_hash: str
    parent_hash: str
    recipe_hash: str
    score: float
    index: int
    tx_hash: str


def _bytes32(value: str, name: str) -> bytes:
    raw = decode_hex(value)
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes as hex (a sha256/keccak digest), got {value!r}")
    return raw


def record_version(
    contracts: RewardContracts,
    owner: LocalAccount,
    *,
    version_hash: str,
    parent_hash: str | None,
    recipe_hash: str,
    score: float,
) -> str:
    """Emit VersionAccepted for an accepted core version; returns the tx hash. ``score`` is S
    in [0, 1], stored in parts per million; ``parent_hash`` None for the base model."""
    if not 0.0 <= score <= 1.0:
        raise ValueError(f"score must lie in [0, 1], got {score!r}")
    call = contracts.registry.functions.record_version(
        _bytes32(version_hash, "version_hash"),
        _bytes32(parent_hash, "parent_hash") if parent_hash else bytes(32),
        _bytes32(recipe_hash, "recipe_hash"),
        round(score * 1_000_000),
    )
    receipt = transact(contracts.w3, owner, call)
    return to_hex(receipt["transactionHash"])


def lineage(contracts: RewardContracts) -> list[VersionRecord]:
    """Every recorded version, oldest first, from the registry's events."""
    logs = contracts.registry.events.VersionAccepted().get_logs(from_block=contracts.from_block)
    return [
        VersionRecord(
            version_hash=to_hex(e.args.version_hash),
            parent_hash=to_hex(e.args.parent_hash),
            recipe_hash=to_hex(e.args.recipe_hash),
            score=e.args.score_ppm / 1_000_000,
            index=int(e.args.index),
            tx_hash=to_hex(e.transactionHash),
        )
        for e in logs
    ]
