"""The coordinator's side of the per-upload bond: refuse unbonded uploads, settle judged ones.

Gate (:meth:`BondKeeper.check`, called by the submission path after the signature checks
out): with a bond configured on chain (``UploadBond.BOND`` > 0) an upload is accepted only if
its signing address holds an unsettled deposit for the delta's sha256; else 402 naming the
amount, the contract and how to post it (``mergenet node submit`` does it by itself).

Settlement (:meth:`BondKeeper.settle_judged`, each round of the epoch publisher) walks the
deposits still held on chain and decides from the database, so it needs no table of its own
and a restart loses nothing (the chain's ``Deposited`` minus ``Settled`` events are the
to-do list):

* a contribution with that sha256 by the depositor, scored: **refund** if it was admitted to
  the merge pool (``in_pool``: it adds something), else **keep**; its evaluation failed:
  refund (the delta passed validation at upload, so a failure is more likely the
  coordinator's than the contributor's); still waiting: leave held;
* a contribution with that sha256 by *another* address: the depositor bonded a copy: keep;
* no contribution after ``orphan_after`` seconds (default 1 h): the upload was refused (a near
  copy, an invalid delta) or never came: keep. A refused copy is kept at the next round
  through :meth:`BondKeeper.forfeit`; the orphan rule is the backstop if that mark is lost.

A retried upload (same file, same key, e.g. after a 503) reuses its held deposit.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from sqlalchemy import select

from mergenet.coordinator import models as m
from mergenet.coordinator.status import ContributionStatus
from mergenet.errors import PaymentRequired, Unavailable
from mergenet.rewards.bond import bond_amount, held_deposits, is_held, settle

if TYPE_CHECKING:
    from eth_account.signers.local import LocalAccount
    from sqlalchemy.orm import Session, sessionmaker

    from mergenet.rewards.bond import HeldDeposit
    from mergenet.rewards.client import RewardContracts

log = logging.getLogger("mergenet.coordinator.bonds")

ORPHAN_AFTER = 3600.0
"""Seconds a deposit may wait for its contribution before it counts as a refused upload."""


def ether(wei: int) -> str:
    return f"{wei / 10**18:.6f}".rstrip("0").rstrip(".") + " ether"


class BondKeeper:
    """Gate and settlement for one deployment's UploadBond (see module docstring)."""

    def __init__(
        self,
        contracts: RewardContracts,
        owner: LocalAccount,
        *,
        orphan_after: float = ORPHAN_AFTER,
    ):
        self.contracts = contracts
        self.owner = owner
        self.orphan_after = orphan_after
        self.amount = bond_amount(contracts)
        """Wei per upload (immutable on chain, read once); 0: bonds disabled."""
        self._forfeits: set[tuple[str, str]] = set()
        self._mutex = threading.Lock()

    @property
    def address(self) -> str:
        return str(self.contracts.bond.address) if self.contracts.bond is not None else ""

    def check(self, sha256: str, address: str) -> None:
        """Raise PaymentRequired unless ``address`` holds a deposit for ``sha256``."""
        if self.amount == 0:
            return
        try:
            held = is_held(self.contracts, sha256, address)
        except Exception as exc:  # an unreachable node: 503, the upload may be retried
            raise Unavailable(
                "the chain cannot be reached to check the upload bond "
                f"({type(exc).__name__}); retry shortly"
            ) from None
        if held:
            return
        raise PaymentRequired(
            f"this coordinator requires a bond of {self.amount} wei ({ether(self.amount)}) per "
            f"upload: {address} holds none for delta {sha256[:16]}…; deposit it on chain "
            f"{self.contracts.w3.eth.chain_id} with UploadBond {self.address}."
            f"deposit(0x{sha256}) sending exactly {self.amount} wei, or upload with "
            "`mergenet node submit`, which posts it from your key first. It is refunded if "
            "the delta enters the merge pool, kept if it is junk or a copy"
        )

    def forfeit(self, sha256: str, address: str) -> None:
        """Mark the bond of an upload refused as a copy to be kept at the next settlement round.

        No transaction here: every owner-key transaction is sent from the epoch round, one at a
        time (two threads signing with one key would race for the nonce), and the refusal's
        409 does not wait for the chain. Only memory: if the process stops first, the orphan
        rule keeps the bond after ``orphan_after``."""
        with self._mutex:
            self._forfeits.add((sha256.lower().removeprefix("0x"), address.lower()))

    def _decide(self, s: Session, d: HeldDeposit, now: float) -> bool | None:
        """True refund, False keep, None not yet."""
        with self._mutex:
            if (d.sha256, d.depositor.lower()) in self._forfeits:
                return False
        row = s.scalar(select(m.Contribution).where(m.Contribution.sha256 == d.sha256))
        if row is None:
            mined = int(self.contracts.w3.eth.get_block(d.block)["timestamp"])
            return False if now - mined >= self.orphan_after else None
        if row.address.lower() != d.depositor.lower():
            return False  # bonded someone else's delta: a copy
        if row.status == ContributionStatus.SCORED:
            return bool(row.in_pool)
        if row.status == ContributionStatus.FAILED:
            return True  # it passed validation; a failed evaluation is more likely ours
        return None

    def settle_judged(self, factory: sessionmaker[Session]) -> list[tuple[str, str, bool]]:
        """Settle every held deposit that can be decided; returns (sha256, depositor, refunded).
        A deposit whose settle fails (chain down, settled concurrently) stays for next time."""
        if self.amount == 0:
            return []
        done = []
        now = time.time()
        for d in held_deposits(self.contracts):
            with factory() as s:
                refund = self._decide(s, d, now)
            if refund is None:
                continue
            try:
                settle(self.contracts, self.owner, d.sha256, d.depositor, refund=refund)
            except Exception as exc:
                log.warning("settling the bond of %s failed, will retry: %s", d.sha256[:12], exc)
                continue
            log.info("bond of %s %s", d.sha256[:12], "refunded" if refund else "kept")
            with self._mutex:
                self._forfeits.discard((d.sha256, d.depositor.lower()))
            done.append((d.sha256, d.depositor, refund))
        return done
