"""Claim with the contributor's own key: check the proof against the chain, sign, send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_utils import decode_hex, to_hex

from mergenet.rewards.client import ChainError, RewardContracts, transact
from mergenet.rewards.merkle import leaf_hash, verify_proof
from mergenet.rewards.units import format_tokens

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount

    from mergenet.rewards.service import RewardStatus


class ClaimError(ChainError):
    """Nothing to claim, a stale proof, or an account that cannot pay for gas."""


@dataclass(frozen=True)
class ClaimResult:
    account: str
    paid: int
    balance: int
    tx_hash: str
    gas_used: int

    def describe(self) -> str:
        return (
            f"received {format_tokens(self.paid)} tokens (balance {format_tokens(self.balance)}), "
            f"tx {self.tx_hash}, gas {self.gas_used}"
        )


def claim_rewards(
    contracts: RewardContracts, account: LocalAccount, status: RewardStatus
) -> ClaimResult:
    """Send ``claim`` for ``status`` (from ``rewards_for_address`` or the coordinator's API),
    signed by ``account``; returns what was paid."""
    if status.address != account.address:
        raise ClaimError(f"the proof is for {status.address}, the key is {account.address}")
    if not status.published or status.root is None:
        raise ClaimError(f"nothing published for {status.address} yet: wait for the next epoch")
    root = decode_hex(status.root)
    proof = [decode_hex(p) for p in status.proof]
    if not verify_proof(leaf_hash(status.address, status.published), proof, root):
        raise ClaimError("the proof does not match its root: fetch the rewards status again")
    chain_root = contracts.merkle_root()
    if chain_root != root:
        raise ClaimError(
            f"the chain's root changed (epoch {contracts.epoch()}) since this proof was made "
            f"(epoch {status.epoch}): fetch the rewards status again"
        )
    before = contracts.cumulative_claimed(account.address)
    if before >= status.published:
        raise ClaimError(
            f"nothing to claim: {format_tokens(before)} tokens already claimed of "
            f"{format_tokens(status.published)} published"
        )
    if contracts.w3.eth.get_balance(account.address) == 0:
        raise ClaimError(f"{account.address} has no ether to pay for the claim's gas")
    call = contracts.distributor.functions.claim(account.address, status.published, root, proof)
    receipt = transact(contracts.w3, account, call)
    paid = contracts.cumulative_claimed(account.address) - before
    return ClaimResult(
        account=account.address,
        paid=paid,
        balance=contracts.balance_of(account.address),
        tx_hash=to_hex(receipt["transactionHash"]),
        gas_used=int(receipt["gasUsed"]),
    )
