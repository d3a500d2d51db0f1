"""What a contributor sees: the function behind the coordinator's ``GET /api/rewards/{address}``.

Amounts are integer base units; in JSON they are decimal strings (JavaScript numbers lose
precision above 2**53) next to a human-readable token figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from eth_utils import to_hex
from sqlalchemy.orm import Session

from mergenet.rewards.client import RewardContracts
from mergenet.rewards.ledger import (
    accrued_total,
    checksum_account,
    epoch_amounts,
    latest_confirmed_epoch,
)
from mergenet.rewards.merkle import MerkleTree
from mergenet.rewards.units import format_tokens


@dataclass(frozen=True)
class RewardStatus:
    address: str
    accrued: int
    """Everything credited, including accruals not yet in a published epoch."""
    published: int
    """Cumulative amount in the newest epoch confirmed on chain (what a claim can reach)."""
    claimed: int | None
    """Paid out on chain so far; None when the chain was not asked."""
    epoch: int | None
    root: str | None
    proof: list[str] = field(default_factory=list)

    @property
    def claimable(self) -> int | None:
        return None if self.claimed is None else max(0, self.published - self.claimed)

    def to_json(self) -> dict[str, Any]:
        def amount(v: int | None) -> dict[str, str] | None:
            return None if v is None else {"base_units": str(v), "tokens": format_tokens(v)}

        return {
            "address": self.address,
            "accrued": amount(self.accrued),
            "published": amount(self.published),
            "claimed": amount(self.claimed),
            "claimable": amount(self.claimable),
            "epoch": self.epoch,
            "root": self.root,
            "cumulative_amount": str(self.published),
            "proof": self.proof,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RewardStatus:
        def amount(v: dict[str, str] | None) -> int | None:
            return None if v is None else int(v["base_units"])

        return cls(
            address=checksum_account(data["address"]),
            accrued=amount(data["accrued"]) or 0,
            published=int(data["cumulative_amount"]),
            claimed=amount(data.get("claimed")),
            epoch=data.get("epoch"),
            root=data.get("root"),
            proof=list(data.get("proof") or []),
        )


@lru_cache(maxsize=4)
def _tree(number: int, root: str, amounts: tuple[tuple[str, int], ...]) -> MerkleTree:
    return MerkleTree.build(dict(amounts))


def rewards_for_address(
    session: Session, address: str, contracts: RewardContracts | None = None
) -> RewardStatus:
    """Accrued, published and (if ``contracts`` is given) claimed amounts, plus the proof
    against the newest confirmed root. An unknown address gets zeros, not an error."""
    address = checksum_account(address)
    accrued = accrued_total(session, address)
    claimed = contracts.cumulative_claimed(address) if contracts is not None else None
    epoch = latest_confirmed_epoch(session)
    if epoch is None:
        return RewardStatus(address, accrued, 0, claimed, None, None)
    amounts = epoch_amounts(session, epoch.number)
    published = amounts.get(address, 0)
    proof: list[str] = []
    if published:
        tree = _tree(epoch.number, epoch.root, tuple(sorted(amounts.items())))
        proof = [to_hex(p) for p in tree.proof(address)]
    return RewardStatus(address, accrued, published, claimed, epoch.number, epoch.root, proof)
