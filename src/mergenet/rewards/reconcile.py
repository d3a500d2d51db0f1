"""Compare the ledger with the chain and report every difference (``mergenet rewards reconcile``).

Checks: the chain's current epoch and root against the newest confirmed ledger epoch; every
root update on chain against the ledger's epoch of that number; every confirmed epoch's
transaction; and that no account was paid more on chain than its published cumulative amount.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_hex
from sqlalchemy import select
from sqlalchemy.orm import Session

from mergenet.rewards.client import RewardContracts
from mergenet.rewards.ledger import epoch_amounts, latest_confirmed_epoch
from mergenet.rewards.models import STATE_CONFIRMED, RewardEpoch


@dataclass
class Reconciliation:
    chain_epoch: int
    chain_root: str
    ledger_epoch: int | None
    ledger_root: str | None
    unconfirmed: list[int] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "chain_epoch": self.chain_epoch,
            "chain_root": self.chain_root,
            "ledger_epoch": self.ledger_epoch,
            "ledger_root": self.ledger_root,
            "unconfirmed_epochs": self.unconfirmed,
            "differences": self.differences,
        }


def reconcile(session: Session, contracts: RewardContracts) -> Reconciliation:
    chain_epoch = contracts.epoch()
    chain_root = to_hex(contracts.merkle_root())
    latest = latest_confirmed_epoch(session)
    report = Reconciliation(
        chain_epoch=chain_epoch,
        chain_root=chain_root,
        ledger_epoch=latest.number if latest else None,
        ledger_root=latest.root if latest else None,
    )
    diff = report.differences
    epochs = {e.number: e for e in session.scalars(select(RewardEpoch))}
    report.unconfirmed = sorted(n for n, e in epochs.items() if e.state != STATE_CONFIRMED)

    if latest is None:
        if chain_epoch:
            diff.append(f"chain is at epoch {chain_epoch} but the ledger has no confirmed epoch")
    elif chain_epoch != latest.number or chain_root != latest.root:
        diff.append(
            f"chain holds epoch {chain_epoch} root {chain_root}; ledger's newest confirmed is "
            f"epoch {latest.number} root {latest.root}"
        )

    seen_on_chain: set[int] = set()
    for update in contracts.root_updates(contracts.from_block):
        number = update["epoch"]
        seen_on_chain.add(number)
        epoch = epochs.get(number)
        if epoch is None:
            diff.append(f"chain epoch {number} (tx {update['tx_hash']}) is not in the ledger")
        elif epoch.root != update["new_root"]:
            diff.append(
                f"epoch {number}: chain root {update['new_root']} != ledger root {epoch.root}"
            )
        elif epoch.state != STATE_CONFIRMED:
            diff.append(f"epoch {number} is on chain but the ledger says {epoch.state}")
    for number, epoch in sorted(epochs.items()):
        if epoch.state == STATE_CONFIRMED and not epoch.superseded and number not in seen_on_chain:
            diff.append(f"ledger epoch {number} is confirmed but no root update for it is on chain")

    if latest is not None:
        for account, amount in sorted(epoch_amounts(session, latest.number).items()):
            claimed = contracts.cumulative_claimed(account)
            if claimed > amount:
                diff.append(f"{account} claimed {claimed} on chain, more than published {amount}")
    return report
