"""Row-epoch seed commitments on chain (``EpochSeeds.vy``): commit sha256(secret), reveal secret.

The contract checks ``sha256(seed) == commitment`` at reveal, so a coordinator cannot reveal a
different secret from the one it committed to before drawing rows from it. Both calls are
idempotent from the caller's side: when the chain already holds what we meant to write (a
transaction that landed before a crash), the existing event's transaction hash is returned
instead of sending a second transaction (which would revert "already committed/revealed").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_utils import decode_hex, to_hex

from mergenet.rewards.client import ChainError, RewardContracts, transact

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import Contract


@dataclass(frozen=True)
class SeedRecord:
    epoch: int
    commitment: str
    seed: str | None
    """None until revealed."""


def _seeds(contracts: RewardContracts) -> Contract:
    if contracts.seeds is None:
        raise ChainError(
            "this deployment has no EpochSeeds contract (deployed before it existed): "
            "run `mergenet chain up` against a fresh chain to redeploy"
        )
    return contracts.seeds


def _bytes32(value: str, name: str) -> bytes:
    raw = decode_hex(value)
    if len(raw) != 32:
        raise ValueError(f"{name} must be 32 bytes as hex, got {len(raw)} bytes")
    return raw


def _event_tx(contracts: RewardContracts, event: str, epoch: int) -> str:
    logs = getattr(_seeds(contracts).events, event)().get_logs(
        from_block=contracts.from_block, argument_filters={"epoch": epoch}
    )
    return to_hex(logs[-1]["transactionHash"]) if logs else ""


def commit_seed(
    contracts: RewardContracts, owner: LocalAccount, epoch: int, commitment: str
) -> str:
    """Commit ``commitment`` (sha256 hex of the secret) for ``epoch``; returns the tx hash.

    Raises ChainError if the chain holds a *different* commitment for the epoch (another
    coordinator database on the same owner key): that is never overwritten."""
    raw = _bytes32(commitment, "commitment")
    onchain = bytes(_seeds(contracts).functions.commitment_of(epoch).call())
    if onchain == raw:
        return _event_tx(contracts, "SeedCommitted", epoch)
    if onchain != bytes(32):
        raise ChainError(
            f"row epoch {epoch} is already committed on chain to {to_hex(onchain)}, not "
            f"{to_hex(raw)}: another coordinator uses this owner key and contract"
        )
    receipt = transact(contracts.w3, owner, _seeds(contracts).functions.commit(epoch, raw))
    return to_hex(receipt["transactionHash"])


def reveal_seed(contracts: RewardContracts, owner: LocalAccount, epoch: int, seed: str) -> str:
    """Reveal ``seed`` (the 32-byte secret as hex) for ``epoch``; returns the tx hash. A seed
    that does not hash to the commitment reverts on chain (ChainRevert)."""
    raw = _bytes32(seed, "seed")
    if _seeds(contracts).functions.revealed(epoch).call():
        return _event_tx(contracts, "SeedRevealed", epoch)
    receipt = transact(contracts.w3, owner, _seeds(contracts).functions.reveal(epoch, raw))
    return to_hex(receipt["transactionHash"])


def seed_record(contracts: RewardContracts, epoch: int) -> SeedRecord:
    """What the chain holds for ``epoch`` (anyone can audit: sha256(seed) == commitment)."""
    seeds = _seeds(contracts)
    revealed = bool(seeds.functions.revealed(epoch).call())
    return SeedRecord(
        epoch=epoch,
        commitment=to_hex(bytes(seeds.functions.commitment_of(epoch).call())),
        seed=to_hex(bytes(seeds.functions.seed_of(epoch).call())) if revealed else None,
    )
