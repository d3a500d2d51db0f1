"""The per-upload bond (``UploadBond.vy``) over JSON-RPC: deposit, check, settle, scan.

A contributor deposits exactly ``BOND`` wei against (delta sha256, its own address) before it
uploads; the coordinator accepts the upload only while that deposit is held, and settles it
once the delta is judged (refund: admitted to the merge pool; keep: junk or a refused copy).
The chain is the record of what is held and settled (``Deposited`` minus ``Settled`` events),
so nothing about bonds needs a database table and a coordinator restart loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_utils import decode_hex, to_checksum_address, to_hex

from mergenet.rewards.client import ChainError, RewardContracts, transact

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from web3.contract import Contract


@dataclass(frozen=True)
class HeldDeposit:
    sha256: str
    """64 hex digits, no 0x (as the coordinator stores contribution hashes)."""
    depositor: str
    amount: int
    block: int


def _bond(contracts: RewardContracts) -> Contract:
    if contracts.bond is None:
        raise ChainError(
            "this deployment has no UploadBond contract (deployed before it existed): "
            "run `mergenet chain up` against a fresh chain to redeploy"
        )
    return contracts.bond


def _digest(sha256: str) -> bytes:
    raw = decode_hex(sha256 if sha256.startswith("0x") else "0x" + sha256)
    if len(raw) != 32:
        raise ValueError(f"a delta sha256 is 32 bytes as hex, got {len(raw)} bytes")
    return raw


def bond_amount(contracts: RewardContracts) -> int:
    """Wei per upload; 0 when bonds are disabled or the deployment has no bond contract."""
    if contracts.bond is None:
        return 0
    return int(contracts.bond.functions.BOND().call())


def is_held(contracts: RewardContracts, sha256: str, depositor: str) -> bool:
    """Whether ``depositor`` holds an unsettled deposit for the delta ``sha256``."""
    call = _bond(contracts).functions.held(_digest(sha256), to_checksum_address(depositor))
    return bool(call.call())


def deposit(contracts: RewardContracts, account: LocalAccount, sha256: str) -> str | None:
    """Post the bond for ``sha256`` from ``account``; returns the tx hash, or None when the
    account already holds a deposit for it (a retried upload reuses its bond)."""
    if is_held(contracts, sha256, account.address):
        return None
    amount = bond_amount(contracts)
    if amount == 0:
        raise ChainError("bonds are disabled on this chain: nothing to deposit")
    call = _bond(contracts).functions.deposit(_digest(sha256))
    receipt = transact(contracts.w3, account, call, value=amount)
    return to_hex(receipt["transactionHash"])


def settle(
    contracts: RewardContracts, owner: LocalAccount, sha256: str, depositor: str, *, refund: bool
) -> str:
    """Refund (``refund``) or keep the held deposit; returns the tx hash. Reverts
    ("no held deposit") if it was settled already: the contract makes it once only."""
    call = _bond(contracts).functions.settle(
        _digest(sha256), to_checksum_address(depositor), refund
    )
    receipt = transact(contracts.w3, owner, call)
    return to_hex(receipt["transactionHash"])


def held_deposits(contracts: RewardContracts) -> list[HeldDeposit]:
    """Every deposit not yet settled, oldest first (from the contract's events)."""
    bond = _bond(contracts)
    start = contracts.from_block
    settled = {
        (to_hex(e["args"]["delta_sha256"]), e["args"]["depositor"])
        for e in bond.events.Settled().get_logs(from_block=start)
    }
    out = []
    for e in bond.events.Deposited().get_logs(from_block=start):
        key = (to_hex(e["args"]["delta_sha256"]), e["args"]["depositor"])
        if key not in settled:
            out.append(
                HeldDeposit(
                    sha256=key[0].removeprefix("0x"),
                    depositor=str(key[1]),
                    amount=int(e["args"]["amount"]),
                    block=int(e["blockNumber"]),
                )
            )
    return out
